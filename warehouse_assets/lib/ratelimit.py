"""The one rate limiter: a request-weight budget shared by every request of the process to one exchange.

Binance counts request weight per IP in fixed windows aligned to epoch multiples of the window length
on the server's clock (6000 per minute by default). `WeightBudget` mirrors that count locally:

- before a request, `acquire(weight)` reserves the weight in the current window, or sleeps until the
  next window starts (plus a guard for the uncertainty of our estimate of the server clock);
- a request the server may count in either of two windows (sent near an edge) is reserved in both:
  over-counting costs a little throughput, under-counting costs a 429;
- after a response, `observe_used_weight` learns what others on the same IP spent. The server's
  figure grows in the order it admits requests, so every request of ours whose answer we have seen
  was admitted no later than the one with the highest figure: others spent at most
  (highest figure - our weight seen answered in that window). That bound is exact once nothing is in
  flight; plain max(ours, server's) would forget our own requests still in flight;
- a 429/418 pauses every caller until `Retry-After` has passed.

State is guarded by a `threading.Lock` because several threads, each with its own event loop, may share
one budget; waiting happens outside the lock with the (injectable) async sleep. `budget_for(base_url)`
returns the process-wide budget of an exchange. Nothing here knows HTTP or Binance's header names.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

DEFAULT_WEIGHT_LIMIT = 6000  # Binance REQUEST_WEIGHT since 2023-08-25
DEFAULT_WINDOW_MS = 60_000
RECHECK_SECONDS = 0.025  # how soon a blocked caller looks again while answers may lower the estimate

Clock = Callable[[], float]  # epoch seconds, like time.time
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Weight reserved for one request about to be sent."""

    weight: int
    window_ms: int
    windows: tuple[int, ...]  # starts (server ms) of every window the server may count the request in
    sent_server_ms: float  # our estimate of the server clock when the reservation was granted
    closed_before_ms: float  # every instant before this had certainly passed on the server by then


@dataclass(frozen=True)
class BudgetStats:
    """A snapshot of a budget's counters. Window keys are window starts in server epoch ms."""

    limit: int
    window_ms: int
    requests: int
    weight: int
    weight_by_window: dict[int, int]  # weight this process reserved, by the window it was sent in
    used_by_window: dict[int, int]  # what we believe the server counts: ours + others' weight
    status_429: int
    status_418: int
    waited_seconds: float
    clock_offset_ms: float
    clock_uncertainty_ms: float


@dataclass
class _Window:
    reserved: int = 0  # our weight (edge requests are reserved in both windows)
    answered: int = 0  # our weight whose used-weight figure we have seen
    reported: int = 0  # the highest used-weight figure the server gave for this window

    @property
    def used(self) -> int:
        return self.reserved + max(self.reported - self.answered, 0)

    @property
    def may_shrink(self) -> bool:
        """Answers still in flight may show that others spent less than we now assume."""
        return self.reported > self.answered and self.reserved > self.answered


@dataclass(frozen=True, slots=True)
class _ClockSample:
    offset_ms: float
    uncertainty_ms: float
    taken_at: float


class WeightBudget:
    """Fixed-window request-weight budget on the server's clock. Thread-safe; see the module docstring."""

    def __init__(
        self,
        name: str = "",
        *,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        window_ms: int = DEFAULT_WINDOW_MS,
        guard_ms: float = 20.0,
        clock_sync_interval_seconds: float = 60.0,
        history_windows: int = 1440,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._limit = limit
        self._window_ms = window_ms
        self._limits_known = False
        self._guard_ms = guard_ms
        self._clock_sync_interval = clock_sync_interval_seconds
        self._history_windows = history_windows
        self._windows: dict[int, _Window] = {}
        self._weight_by_window: dict[int, int] = {}
        self._paused_until = 0.0
        self._samples: deque[_ClockSample] = deque(maxlen=8)
        self._round_trips_ms: deque[float] = deque(maxlen=32)
        self._offset_ms = 0.0
        self._uncertainty_ms = 0.0
        self._next_clock_sync = 0.0
        self._clock_synced = False
        self._claims: dict[str, float] = {}
        self._requests = 0
        self._weight = 0
        self._status_429 = 0
        self._status_418 = 0
        self._waited = 0.0

    # ------------------------------------------------------------------------------ configuration

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window_ms(self) -> int:
        return self._window_ms

    @property
    def limits_known(self) -> bool:
        """True once `configure` was called with the exchange's published limit."""
        return self._limits_known

    def configure(self, limit: int, window_ms: int) -> bool:
        """Adopt the exchange's limit (exchangeInfo's REQUEST_WEIGHT). True if the window length changed.

        After a change, counts kept under the old length are dropped: observe the answer that taught
        the new length again, its used-weight figure says what this window already holds.
        """
        if limit <= 0 or window_ms <= 0:
            raise ValueError(
                f"a weight budget needs a positive limit and window, got {limit} per {window_ms} ms"
            )
        with self._lock:
            changed = window_ms != self._window_ms
            if changed:
                self._windows.clear()
            self._limit = limit
            self._window_ms = window_ms
            self._limits_known = True
            return changed

    # -------------------------------------------------------------------------------- server clock

    def observe_server_time(self, server_ms: float, sent_at: float, received_at: float) -> None:
        """Record one clock sample: the server said `server_ms` between local `sent_at` and `received_at`."""
        with self._lock:
            half_round_trip_ms = max(received_at - sent_at, 0.0) * 500.0
            midpoint_ms = (sent_at + received_at) * 500.0
            self._samples.append(_ClockSample(server_ms - midpoint_ms, half_round_trip_ms, received_at))
            # The sample with the shortest round trip bounds the error best (NTP's rule); old ones may drift.
            fresh = [s for s in self._samples if received_at - s.taken_at <= 10 * self._clock_sync_interval]
            best = min(fresh, key=lambda s: s.uncertainty_ms)
            self._offset_ms = best.offset_ms
            self._uncertainty_ms = best.uncertainty_ms
            self._clock_synced = True
            self._next_clock_sync = received_at + self._clock_sync_interval

    def observe_round_trip(self, seconds: float) -> None:
        """Record how long an answered request took: the server may count it at any moment until then."""
        with self._lock:
            self._round_trips_ms.append(max(seconds, 0.0) * 1000.0)

    @property
    def clock_synced(self) -> bool:
        return self._clock_synced

    def clock_sync_due(self) -> bool:
        return self._clock() >= self._next_clock_sync

    def request_clock_sync(self) -> None:
        """Ask for a fresh clock sample before the next request (e.g. after an unexpected 429)."""
        with self._lock:
            self._next_clock_sync = 0.0

    def server_now_ms(self) -> float:
        """Our estimate of the server's clock, epoch ms."""
        return self._clock() * 1000.0 + self._offset_ms

    # ------------------------------------------------------------------ one-at-a-time housekeeping

    def try_claim(self, task: str, ttl_seconds: float = 30.0) -> bool:
        """Claim a housekeeping task (clock sync, limit discovery) so only one caller does it at a time."""
        with self._lock:
            now = self._clock()
            if self._claims.get(task, 0.0) > now:
                return False
            self._claims[task] = now + ttl_seconds
            return True

    def release(self, task: str) -> None:
        with self._lock:
            self._claims.pop(task, None)

    # ------------------------------------------------------------------------------- reservations

    def try_reserve(self, weight: int) -> Reservation | float:
        """Reserve `weight` now, or return how many seconds to wait before trying again."""
        with self._lock:
            if weight > self._limit:
                raise ValueError(
                    f"a request of weight {weight} can never fit a budget of {self._limit} per "
                    f"{self._window_ms} ms{self._named()}"
                )
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now
            window = self._window_ms
            server_ms = now * 1000.0 + self._offset_ms
            starts = self._windows_touched(server_ms)
            full = [start for start in starts if self._window(start).used + weight > self._limit]
            if full:
                next_start_ms = max(full) + window + self._guard_ms + self._uncertainty_ms
                wait = max((next_start_ms - server_ms) / 1000.0, 0.001)
                if any(self._window(start).may_shrink for start in full):
                    wait = min(wait, RECHECK_SECONDS)
                return wait
            for start in starts:
                self._window(start).reserved += weight
            sent_in = int(server_ms // window) * window
            self._weight_by_window[sent_in] = self._weight_by_window.get(sent_in, 0) + weight
            self._requests += 1
            self._weight += weight
            self._prune(sent_in)
            return Reservation(
                weight=weight,
                window_ms=window,
                windows=starts,
                sent_server_ms=server_ms,
                closed_before_ms=server_ms - self._uncertainty_ms,
            )

    async def acquire(self, weight: int) -> Reservation:
        """Reserve `weight`, sleeping (outside the lock) until the budget and any pause allow it."""
        started = self._clock()
        while True:
            outcome = self.try_reserve(weight)
            if isinstance(outcome, Reservation):
                waited = self._clock() - started
                if waited > 0:
                    with self._lock:
                        self._waited += waited
                return outcome
            # Re-check at least every second: a clock sync or a pause may change the answer.
            await self._sleep(min(outcome, 1.0))

    def observe_used_weight(self, reservation: Reservation, used_by_window_ms: Mapping[int, int]) -> None:
        """Learn from a response's used-weight figures (`{window length ms: used}`); call once per answer.

        The window is worked out from the send time under the current window length, so after a
        `configure` that changed the length the same answer may be observed again (see `configure`).
        """
        with self._lock:
            used = used_by_window_ms.get(self._window_ms)
            starts = self._windows_touched(reservation.sent_server_ms)
            if used is None or len(starts) != 1:
                return  # near a window edge we cannot tell which window the figure belongs to
            window = self._window(starts[0])
            window.reported = max(window.reported, used)
            if reservation.window_ms == self._window_ms and reservation.windows == starts:
                window.answered += reservation.weight
            # else: reserved under the old window length, so not part of `reserved` either

    def note_rate_limited(self, status: int, retry_after_seconds: float | None) -> float:
        """Count a 429/418 and pause every caller; returns the pause in seconds.

        Without `Retry-After` the pause lasts until the next window starts.
        """
        with self._lock:
            if status == 418:
                self._status_418 += 1
            else:
                self._status_429 += 1
            now = self._clock()
            if retry_after_seconds is None:
                server_ms = now * 1000.0 + self._offset_ms
                window_end = (int(server_ms // self._window_ms) + 1) * self._window_ms
                pause = (window_end - server_ms) / 1000.0
            else:
                pause = retry_after_seconds
            pause += (self._guard_ms + self._uncertainty_ms) / 1000.0
            self._paused_until = max(self._paused_until, now + pause)
            self._next_clock_sync = 0.0  # an unexpected refusal may mean our clock estimate is off
            return self._paused_until - now

    def paused_for(self) -> float:
        """Seconds until a 429/418 pause ends (0 when not paused)."""
        return max(self._paused_until - self._clock(), 0.0)

    # ---------------------------------------------------------------------------------- counters

    def stats(self) -> BudgetStats:
        with self._lock:
            return BudgetStats(
                limit=self._limit,
                window_ms=self._window_ms,
                requests=self._requests,
                weight=self._weight,
                weight_by_window=dict(self._weight_by_window),
                used_by_window={start: window.used for start, window in self._windows.items()},
                status_429=self._status_429,
                status_418=self._status_418,
                waited_seconds=self._waited,
                clock_offset_ms=self._offset_ms,
                clock_uncertainty_ms=self._uncertainty_ms,
            )

    def _window(self, start: int) -> _Window:
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = _Window()
        return window

    def _windows_touched(self, server_ms: float) -> tuple[int, ...]:
        """Starts of the windows the server may count a request sent at `server_ms` (our estimate) in."""
        # Our estimate may be early or late by `uncertainty`; the server may admit the request any time
        # until it answers (queueing under load), so a recent worst round trip is added, capped so one
        # stuck answer cannot halve throughput.
        window = self._window_ms
        flight_ms = min(max(self._round_trips_ms, default=0.0), window / 4)
        first = int((server_ms - self._guard_ms - self._uncertainty_ms) // window) * window
        last = int((server_ms + self._guard_ms + self._uncertainty_ms + flight_ms) // window) * window
        return (first,) if first == last else (first, last)  # windows are far longer than the margins

    def _prune(self, current_window: int) -> None:
        oldest = current_window - self._history_windows * self._window_ms
        for counts in (self._windows, self._weight_by_window):
            if len(counts) > self._history_windows:
                for start in [s for s in counts if s < oldest]:
                    del counts[start]

    def _named(self) -> str:
        return f" ({self.name})" if self.name else ""


_BUDGETS: dict[str, WeightBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(base_url: str) -> WeightBudget:
    """The process-wide budget for one exchange base URL (created on first use)."""
    key = base_url.rstrip("/")
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = WeightBudget(key)
        return budget
