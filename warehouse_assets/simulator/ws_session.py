"""One WebSocket stream connection: its subscriptions, output, keepalive, lifetime and message limits.

Control messages are answered by ws_requests.py.

Limits and timing (all settings read from the hub; ping/pong changes apply from the next ping):
- incoming messages (text, binary, ping and pong frames) above 5 within any 1 s window: close 1008
  "Too many requests" (the code and text clients report from Binance).
- a ping frame every ping_interval s (payload: the send time in ms as ASCII); a ping whose payload
  is not echoed by a pong within pong_timeout s: close 1008 "Pong timeout". A pong echoing a ping
  also settles the older ones; unsolicited pongs count as incoming messages and settle nothing.
- lifetime_seconds after the connection opened: close 1001 "Connection lifetime expired"; a
  serverShutdown event goes out shutdown_notice_seconds before that (none if 0).
- more than 128 MiB written but not taken by the client: the TCP connection is aborted (slow consumer).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.ws_requests import answer
from warehouse_assets.simulator.ws_wire import (
    SERVER_SHUTDOWN,
    SERVER_SHUTDOWN_STREAM,
    Chunk,
    frame_texts,
    wrap,
)

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws import WsHub
    from warehouse_assets.simulator.ws_protocol import FrameLink

INCOMING_PER_SECOND = 5
MAX_BUFFERED = 128 * 2**20
_ids = itertools.count(1)


class Session:
    """A connection to /ws or /stream (see the module docstring)."""

    def __init__(self, hub: WsHub, link: FrameLink, path: str, combined: bool, micro: bool) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.link = link
        self.path = path
        self.combined = combined
        self.micro = micro
        self.streams: dict[str, None] = {}  # an ordered set
        self.loop = link.loop
        self.opened = self.loop.time()
        self.stall_until = 0.0  # loop time; inf = until cleared
        self.stall_answers_pings = True
        self.close_why: str | None = None
        self._incoming: deque[float] = deque()
        self._pings: dict[bytes, float] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._last_ping_ms = 0

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        settings = self.hub.settings
        self.link.set_listener(self)
        self._later(settings.ping_interval, self._ping)
        self._later(settings.lifetime_seconds, self.close, 1001, "Connection lifetime expired", "lifetime")
        notice = settings.shutdown_notice_seconds
        if notice > 0:
            self._later(max(0.0, settings.lifetime_seconds - notice), self.server_shutdown)

    def finish(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _later(self, delay: float, callback: Any, *args: Any) -> None:
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > self.loop.time()]
        self._timers.append(self.loop.call_later(delay, callback, *args))

    def close(self, code: int, reason: str, why: str) -> None:
        if self.link.open and self.close_why is None:
            self.close_why = why
            self.link.close(code, reason)

    def drop(self, why: str = "dropped") -> None:
        """Abort the TCP connection without a close frame."""
        if self.close_why is None:
            self.close_why = why
        self.link.abort()

    # ---- stall -----------------------------------------------------------------------------
    @property
    def stalled(self) -> bool:
        return self.stall_until > self.loop.time()

    @property
    def answer_pings(self) -> bool:
        return self.stall_answers_pings or not self.stalled

    def stall(self, seconds: float | None, answer_pings: bool) -> None:
        self.stall_until = float("inf") if not seconds else self.loop.time() + seconds
        self.stall_answers_pings = answer_pings

    def unstall(self) -> None:
        self.stall_until = 0.0
        self.stall_answers_pings = True

    # ---- frames from the protocol ------------------------------------------------------------
    def on_incoming(self, kind: str) -> bool:
        now = self.loop.time()
        self.hub.stats.incoming[kind] += 1
        window = self._incoming
        window.append(now)
        while window[0] <= now - 1.0:
            window.popleft()
        if len(window) > INCOMING_PER_SECOND:
            self.close(1008, "Too many requests", "rate_limit")
            return False
        return True

    def on_pong(self, payload: bytes) -> None:
        if payload in self._pings:
            for key in list(self._pings):
                del self._pings[key]
                if key == payload:
                    break

    def _ping(self) -> None:
        settings = self.hub.settings
        if not self.link.open:
            return
        self._later(settings.ping_interval, self._ping)
        if not self.answer_pings:
            return  # a silent stall sends nothing at all
        ms = max(clock.now_ms(), self._last_ping_ms + 1)
        self._last_ping_ms = ms
        payload = str(ms).encode()
        self._pings[payload] = self.loop.time()
        self.link.ping(payload)
        self.hub.stats.pings_sent += 1
        self._later(settings.pong_timeout, self._pong_deadline, payload)

    def _pong_deadline(self, payload: bytes) -> None:
        if payload in self._pings:
            self.close(1008, "Pong timeout", "pong_timeout")

    # ---- output ----------------------------------------------------------------------------
    def write_chunks(self, chunks: list[Chunk]) -> None:
        """Write the chunks of subscribed streams in one transport write (none while stalled)."""
        if not self.link.open:
            return
        streams = self.streams
        stats = self.hub.stats
        if self.stalled:
            for chunk in chunks:
                if chunk.stream in streams:
                    stats.withheld[chunk.stream] += len(chunk)
            return
        parts = []
        for chunk in chunks:
            if chunk.stream in streams:
                parts.append(chunk.framed(self.combined, self.micro))
                stats.messages_sent[chunk.stream] += len(chunk)
        if parts:
            self.link.write(parts[0] if len(parts) == 1 else b"".join(parts))
            if self.link.buffered() > MAX_BUFFERED:
                self.drop("slow_consumer")

    def send_text(self, text: str) -> None:
        """A control reply or event (silent only during a stall that does not answer pings)."""
        if self.answer_pings:
            self.link.write(frame_texts([text], text.isascii()))

    def server_shutdown(self) -> None:
        if not self.link.open:
            return
        payload = SERVER_SHUTDOWN % (clock.now_us() if self.micro else clock.now_ms())
        self.send_text(wrap(SERVER_SHUTDOWN_STREAM, payload) if self.combined else payload)
        self.hub.stats.server_shutdown_sent += 1

    # ---- input -----------------------------------------------------------------------------
    def subscribe(self, names: list[str]) -> None:
        self.hub.subscribe(self, names)

    def unsubscribe(self, names: list[str]) -> None:
        self.hub.unsubscribe(self, names)

    async def run(self, websocket: WebSocket) -> None:
        """Answer control messages until the connection ends."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            self.send_text(answer(text, self))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "streams": list(self.streams),
            "combined": self.combined,
            "micro": self.micro,
            "age_seconds": round(self.loop.time() - self.opened, 3),
            "stalled": self.stalled,
        }
