"""The WebSocket server protocol the simulator runs under uvicorn, with frame-level access for the streams.

ASGI has no ping frames, no abortive close and one message per send; the Binance stream endpoint
needs all three. `SimWebSocketProtocol` subclasses uvicorn's websockets-sansio protocol and puts a
`FrameLink` into scope["extensions"]["simulator.ws"]["link"]: it writes pre-framed text messages
in one transport write, sends pings, closes with a code, aborts the TCP connection without a close
frame, answers handshakes websockets refuses (HTTP 414 for a request line over 8 KiB, where
uvicorn would leave the client waiting), and reports every incoming text/binary message, ping and pong to a listener before uvicorn
handles it (the listener may refuse it, e.g. after closing for the message rate). permessage-deflate
is never negotiated (compressing each message would cost more than the rest of its path), and
uvicorn's own keepalive is off: the session (ws_session.py) pings on its own schedule.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.server import ServerProtocol

EXTENSION = "simulator.ws"


class FrameListener(Protocol):
    """What a connection's session hears from the protocol."""

    @property
    def answer_pings(self) -> bool: ...

    def on_incoming(self, kind: str) -> bool:
        """A message arrived ("text", "bytes", "ping", "pong"); False drops it (the session closed)."""
        ...

    def on_pong(self, payload: bytes) -> None: ...


class SimWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol with the hooks described in the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = ServerProtocol(
            extensions=[], max_size=self.config.ws_max_size, logger=logging.getLogger("uvicorn.error")
        )
        self.listener: FrameListener | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {"link": FrameLink(self)}

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the request (e.g. 414 for a request line over 8 KiB, about 450
            # streams in a URL) and queued its answer, which uvicorn would never send
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def start_keepalive(self) -> None:
        """Off: the session pings (see ws_session.py)."""

    def _incoming(self, kind: str) -> bool:
        if self.close_sent or self.transport.is_closing():
            return False
        return self.listener is None or self.listener.on_incoming(kind)

    def handle_text(self, event: Frame) -> None:
        if self._incoming("text"):
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        if self._incoming("bytes"):
            super().handle_bytes(event)

    def handle_ping(self) -> None:
        pong = b"".join(self.conn.data_to_send())  # websockets queued the pong echoing the payload
        if self._incoming("ping") and (self.listener is None or self.listener.answer_pings):
            self.transport.write(pong)

    def handle_pong(self, event: Frame) -> None:
        if self._incoming("pong") and self.listener is not None:
            self.listener.on_pong(bytes(event.data))


class FrameLink:
    """The session's handle on its connection (see the module docstring)."""

    def __init__(self, protocol: SimWebSocketProtocol) -> None:
        self._protocol = protocol

    def set_listener(self, listener: FrameListener) -> None:
        self._protocol.listener = listener

    @property
    def open(self) -> bool:
        p = self._protocol
        return not (p.close_sent or p.disconnected or p.transport.is_closing())

    def write(self, frames: bytes) -> None:
        """Write ready frames (ws_wire.frame_texts) if the connection is still open."""
        if self.open:
            self._protocol.transport.write(frames)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        return self._protocol.transport.get_write_buffer_size()

    async def drained(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (or the connection is gone)."""
        await self._protocol.writable.wait()

    def ping(self, payload: bytes) -> None:
        p = self._protocol
        if self.open:
            p.conn.send_ping(payload)
            p.transport.write(b"".join(p.conn.data_to_send()))

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait (10 s at most) for the client's; the app then sees a disconnect."""
        p = self._protocol
        if not self.open:
            return
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        p.close_sent = True
        try:
            p.conn.send_close(code, reason)
        except InvalidState:  # the client's close frame crossed ours
            p.transport.close()
            return
        p.transport.write(b"".join(p.conn.data_to_send()))
        if p.read_paused:
            p.read_paused = False
            p.transport.resume_reading()
        p.close_timer = p.loop.call_later(p.close_timeout, p.transport.close)

    def abort(self) -> None:
        """Close the TCP connection at once, without a close frame (the client sees code 1006)."""
        p = self._protocol
        if not p.transport.is_closing():
            p.transport.abort()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._protocol.loop
