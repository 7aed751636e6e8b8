"""One WebSocket stream connection: its subscriptions, control messages, keepalive, lifetime and limits.

Control messages (web-socket-streams.md): SUBSCRIBE / UNSUBSCRIBE {"method","params":[names],"id"}
answer {"result":null,"id":..}; LIST_SUBSCRIPTIONS answers {"result":[names],"id":..} in
subscription order; SET_PROPERTY ["combined", bool] and GET_PROPERTY ["combined"] switch and read
the combined wrapper. `id` may be a signed 64-bit integer, an alphanumeric string of at most 36
characters, or null. Errors: {"error":{"code":N,"msg":"..."},"id":<id or null>} with Binance's codes
and texts (0 unknown property, 1 "Invalid value type: expected Boolean", 2 "Invalid request: ...",
3 "Invalid JSON: ..."). Simulator choices where Binance documents no text: an invalid stream name
(anywhere in params) refuses the whole request with code 2 "Invalid request: invalid stream" (the
text seen on the wire), params that are not a list of names give code 2 "Invalid request: params
must be a list of stream names", and a SUBSCRIBE that would exceed 1024 streams is refused with code
2 "Invalid request: too many streams ..." (nothing of it subscribed). A well-formed name of an
unknown symbol is accepted and stays silent, as on Binance.

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
import json
import re
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.ws_wire import (
    MAX_STREAMS,
    SERVER_SHUTDOWN,
    SERVER_SHUTDOWN_STREAM,
    Chunk,
    frame_texts,
    valid_stream,
    wrap,
)

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws import WsHub
    from warehouse_assets.simulator.ws_protocol import FrameLink

INCOMING_PER_SECOND = 5
MAX_BUFFERED = 128 * 2**20
ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ids = itertools.count(1)


class ControlError(Exception):
    """A control message Binance would answer with an error object."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _reply(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or (isinstance(value, str) and bool(ID_RE.match(value)))


def _stream_names(params: Any) -> list[str]:
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ControlError(2, "Invalid request: params must be a list of stream names")
    if not all(valid_stream(p) for p in params):
        raise ControlError(2, "Invalid request: invalid stream")
    return list(dict.fromkeys(params))


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
    async def run(self, websocket: WebSocket) -> None:
        """Answer control messages until the connection ends."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            self.send_text(self.handle(text))

    def handle(self, text: str) -> str:
        """The reply to one control message (see the module docstring)."""
        try:
            request = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}"
            return _reply({"error": {"code": 3, "msg": msg}, "id": None})
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict):
                raise ControlError(2, "Invalid request: expected a JSON object with method, params and id")
            if "method" not in request:
                raise ControlError(2, f"Invalid request: missing field `method` at line 1 column {len(text)}")
            if "id" not in request or not _valid_id(request_id):
                request_id = None
                raise ControlError(2, "Invalid request: request ID must be an unsigned integer")
            result = self._method(request["method"], request.get("params"), text)
        except ControlError as error:
            return _reply({"error": {"code": error.code, "msg": error.msg}, "id": request_id})
        return _reply({"result": result, "id": request_id})

    def _method(self, method: Any, params: Any, text: str) -> Any:
        if method == "SUBSCRIBE":
            names = _stream_names(params)
            new = [n for n in names if n not in self.streams]
            if len(self.streams) + len(new) > MAX_STREAMS:
                raise ControlError(
                    2,
                    f"Invalid request: too many streams; a connection listens to at most {MAX_STREAMS} "
                    f"(subscribed {len(self.streams)}, asked for {len(new)} more)",
                )
            self.hub.subscribe(self, new)
            return None
        if method == "UNSUBSCRIBE":
            self.hub.unsubscribe(self, [n for n in _stream_names(params) if n in self.streams])
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise ControlError(2, "Invalid request: too many parameters")
            return list(self.streams)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            size = 2 if method == "SET_PROPERTY" else 1
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                raise ControlError(2, "Invalid request: property name must be a string")
            if len(params) > size:
                raise ControlError(2, "Invalid request: too many parameters")
            if params[0] != "combined":
                raise ControlError(0, "Unknown property")
            if method == "GET_PROPERTY":
                return self.combined
            if len(params) < 2 or not isinstance(params[1], bool):
                raise ControlError(1, "Invalid value type: expected Boolean")
            self.combined = params[1]
            return None
        shown = method if isinstance(method, str) else json.dumps(method)
        at = text.find(json.dumps(method))
        column = at + len(json.dumps(method)) if at >= 0 else len(text)
        expected = ", ".join(f"`{m}`" for m in METHODS)
        raise ControlError(
            2,
            f"Invalid request: unknown variant `{shown}`, expected one of {expected} at line 1 column {column}",
        )

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
