"""Request weight per client IP, 429 answers and escalating 418 IP bans, the way Binance does it.

Windows are fixed and aligned to epoch multiples of the window length (like Binance's per-minute
windows). Every request adds its weight to its IP's current window, rejected ones included. Over
the limit the answer is 429 with Retry-After = the seconds until the window ends (rounded up). A
client that sends again before that time is banned (418): ban_base_seconds for the first offence,
doubled at each repeated one, capped at three days; while banned every request gets 418 with the
remaining time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from warehouse_assets.simulator.protocol import banned, too_much_weight

MAX_BAN_SECONDS = 3 * 86_400


@dataclass(frozen=True)
class Decision:
    """The limiter's verdict on one request. status 200 means: go ahead."""

    status: int
    used: int  # weight used in the IP's current window, this request included
    window_start_ms: int
    retry_after: int | None = None
    body: dict[str, Any] | None = None


@dataclass
class _Client:
    window_start_ms: int = 0
    used: int = 0
    retry_until: float = 0.0  # set by a 429: sending before this is an offence
    banned_until: float = 0.0
    offences: int = 0


class WeightLimiter:
    """REQUEST_WEIGHT accounting for all client IPs."""

    def __init__(self, limit: int, window_seconds: int, ban_base_seconds: int) -> None:
        if limit < 1 or window_seconds < 1 or ban_base_seconds < 1:
            raise ValueError(
                f"weight limit ({limit}), window ({window_seconds} s) and ban base ({ban_base_seconds} s) "
                "must all be positive"
            )
        self.limit = limit
        self.window_seconds = window_seconds
        self.ban_base_seconds = ban_base_seconds
        self._clients: dict[str, _Client] = {}

    def reset(self) -> None:
        self._clients.clear()

    def window_start_ms(self, now: float) -> int:
        return int(now // self.window_seconds) * self.window_seconds * 1000

    def _client(self, ip: str, now: float) -> _Client:
        client = self._clients.setdefault(ip, _Client())
        start = self.window_start_ms(now)
        if client.window_start_ms != start:
            client.window_start_ms, client.used = start, 0
        return client

    def add(self, ip: str, weight: int, now: float) -> None:
        """Count weight used elsewhere (another process on the same IP)."""
        self._client(ip, now).used += weight

    def used(self, ip: str, now: float) -> int:
        return self._client(ip, now).used

    def admit(self, ip: str, weight: int, now: float) -> Decision:
        """Count a request and decide whether it may be answered."""
        client = self._client(ip, now)
        client.used += weight
        start = client.window_start_ms
        if now < client.banned_until:
            return self._ban_answer(client, now, start)
        if now < client.retry_until:
            client.offences += 1
            seconds = min(self.ban_base_seconds * 2 ** (client.offences - 1), MAX_BAN_SECONDS)
            client.banned_until = now + seconds
            client.retry_until = 0.0
            return self._ban_answer(client, now, start)
        if client.used > self.limit:
            window_end = (start / 1000) + self.window_seconds
            client.retry_until = window_end
            retry = max(1, math.ceil(window_end - now))
            return Decision(429, client.used, start, retry, too_much_weight(self.limit, self.window_seconds))
        return Decision(200, client.used, start)

    def _ban_answer(self, client: _Client, now: float, start: int) -> Decision:
        retry = max(1, math.ceil(client.banned_until - now))
        until_ms = int(client.banned_until * 1000)
        return Decision(418, client.used, start, retry, banned(until_ms))
