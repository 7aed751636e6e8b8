"""Binance spot WebSocket streams on the simulator: the routes and the hub of connections and feeds.

Routes (same port as REST; web-socket-streams.md):
  /ws/<stream>              raw stream: bare payloads (several names joined by "/" also work);
                            /ws alone opens with no stream (SUBSCRIBE later)
  /stream?streams=a/b/c     combined streams: {"stream":"<name>","data":<payload>}; /stream alone: none yet
  &timeUnit=MICROSECOND     (or microsecond) times in us; MILLISECOND or absent: ms
Refused at the handshake with HTTP 400 and {"code":2,"msg":...} (a simulator choice; Binance does
not document it): an invalid stream name, more than 1024 streams, another timeUnit. A request
line over 8 KiB (about 450 stream names) gets HTTP 414 (Binance also limits URL length): name many
streams with SUBSCRIBE. A valid name of an unknown symbol, or a kind the simulator does not produce
(depth, bookTicker, tickers, other kline intervals), is accepted and stays silent. Data: ws_feed.py (live synthetic aggTrade, trade,
kline_1m; nothing with --archive-dir) or ws_replay.py (--replay). Connections: ws_session.py.

Control API: ws_control.py (/_sim/ws, /_sim/ws/faults, /_sim/ws/shutdown, /_sim/ws/stats, /_sim/clock).
The endpoint needs ws_protocol.SimWebSocketProtocol as uvicorn's ws protocol (python -m
warehouse_assets.simulator sets it); under another server a connection is refused (HTTP 403).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from warehouse_assets.simulator.config import SimulatorConfig
from warehouse_assets.simulator.market import SyntheticMarket
from warehouse_assets.simulator.ws_control import startup_settings
from warehouse_assets.simulator.ws_faults import SWITCHES, StreamFaults, WsFaultError, WsStats
from warehouse_assets.simulator.ws_feed import SymbolFeed
from warehouse_assets.simulator.ws_protocol import EXTENSION
from warehouse_assets.simulator.ws_replay import Capture, Player
from warehouse_assets.simulator.ws_session import Session
from warehouse_assets.simulator.ws_wire import LIVE_KINDS, MAX_STREAMS, Chunk, split_stream, valid_stream


class WsHub:
    """Every open stream connection, the live feeds, the replay player, settings, faults and stats."""

    def __init__(
        self, config: SimulatorConfig, market: SyntheticMarket | None, capture: Capture | None
    ) -> None:
        self.config = config
        self.startup = startup_settings(config)
        self.settings = replace(self.startup)
        self.market = market
        self.capture = capture
        self.stats = WsStats()
        self.faults = StreamFaults(self.stats)
        self.player = (
            None if capture is None else Player(capture, config.replay_speed, self.faults, self.stats)
        )
        self.sessions: dict[int, Session] = {}
        self.feeds: dict[str, SymbolFeed] = {}
        self._replays: dict[int, asyncio.Task[None]] = {}

    @property
    def agg_trade_rate(self) -> float:
        return self.settings.agg_trade_rate

    # ---- connections -----------------------------------------------------------------------
    def open(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.stats.connections_opened += 1
        session.start()

    def closed(self, session: Session) -> None:
        self.unsubscribe(session, list(session.streams))
        task = self._replays.pop(session.id, None)
        if task is not None:
            task.cancel()
        session.finish()
        if self.sessions.pop(session.id, None) is not None:
            self.stats.closed[session.close_why or "client"] += 1

    def subscribe(self, session: Session, names: Iterable[str]) -> None:
        for name in names:
            if name in session.streams:
                continue
            session.streams[name] = None
            feed_kind = self._feed_kind(name)
            if feed_kind is not None:
                feed_kind[0].add(session, feed_kind[1])
        if self.player is not None and session.streams and session.id not in self._replays:
            self._replays[session.id] = asyncio.get_running_loop().create_task(self.player.play(session))

    def unsubscribe(self, session: Session, names: Iterable[str]) -> None:
        for name in names:
            if name not in session.streams:
                continue
            del session.streams[name]
            feed_kind = self._feed_kind(name)
            if feed_kind is not None:
                feed_kind[0].remove(session, feed_kind[1])

    def _feed_kind(self, name: str) -> tuple[SymbolFeed, str] | None:
        parts = split_stream(name)
        if (
            self.market is None
            or parts is None
            or parts[1] not in LIVE_KINDS
            or parts[0] not in self.market.specs
        ):
            return None
        symbol, kind = parts
        if symbol not in self.feeds:
            self.feeds[symbol] = SymbolFeed(symbol, self.market, self)
        return self.feeds[symbol], kind

    def publish(self, sessions: Iterable[Session], chunks: list[Chunk]) -> None:
        """Send a feed's batch (after the stream faults) to its listening sessions."""
        chunks = self.faults.apply(chunks)
        for session in sessions:
            session.write_chunks(chunks)

    # ---- control ---------------------------------------------------------------------------
    def restart_feeds(self) -> None:
        for feed in self.feeds.values():
            feed.restart()

    def update_settings(self, body: Any) -> None:
        settings = self.settings.updated(body)
        rate_changed = settings.agg_trade_rate != self.settings.agg_trade_rate
        self.settings = settings
        if rate_changed:
            self.restart_feeds()

    def reset(self) -> None:
        """Back to the start-up settings; faults cleared, stalls ended, counters zeroed."""
        rate_changed = self.settings.agg_trade_rate != self.startup.agg_trade_rate
        self.settings = replace(self.startup)
        self.stats = WsStats()
        self.faults = StreamFaults(self.stats)
        if self.player is not None:
            self.player.faults, self.player.stats = self.faults, self.stats
        for session in self.sessions.values():
            session.unstall()
        if rate_changed:
            self.restart_feeds()

    def apply_faults(self, body: Any) -> dict[str, Any]:
        """POST /_sim/ws/faults (see the module docstring); validates everything before acting."""
        if not isinstance(body, dict):
            raise WsFaultError('the body must be a JSON object like {"skip": {"btcusdt@aggTrade": 3}}')
        unknown = sorted(set(body) - {"drop", "stall", *SWITCHES})
        if unknown:
            raise WsFaultError(
                f"unknown WebSocket fault(s) {unknown}; known: drop, stall, {', '.join(SWITCHES)}"
            )
        drop, stall = body.get("drop", False), body.get("stall")
        if not isinstance(drop, bool) and not (isinstance(drop, dict) and set(drop) <= {"stream"}):
            raise WsFaultError(f'drop must be true or {{"stream": name}}, got {drop!r}')
        if stall is not None and stall is not False:
            if not isinstance(stall, dict) or not set(stall) <= {"seconds", "answer_pings", "stream"}:
                raise WsFaultError(
                    f'stall must be false or {{"seconds", "answer_pings", "stream"}}, got {stall!r}'
                )
            seconds = stall.get("seconds") or 0
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise WsFaultError(f"stall seconds must be a non-negative number, got {seconds!r}")
            if not isinstance(stall.get("answer_pings", True), bool):
                raise WsFaultError(f"stall answer_pings must be true or false, got {stall['answer_pings']!r}")
        probe = StreamFaults(WsStats())
        for switch in SWITCHES:
            if switch in body:
                probe.arm(switch, body[switch])
        for switch in SWITCHES:
            if switch in body:
                self.faults.arm(switch, body[switch])
        result: dict[str, Any] = {}
        if drop:
            targets = self._targets(drop if isinstance(drop, dict) else {})
            for session in targets:
                session.drop()
            result["dropped"] = [s.id for s in targets]
        if stall is False:
            for session in self.sessions.values():
                session.unstall()
        elif isinstance(stall, dict):
            targets = self._targets(stall)
            for session in targets:
                session.stall(stall.get("seconds"), stall.get("answer_pings", True))
            result["stalled"] = [s.id for s in targets]
        return {**result, **self.faults_json()}

    def _targets(self, spec: dict[str, Any]) -> list[Session]:
        stream = spec.get("stream")
        return [s for s in self.sessions.values() if stream is None or stream in s.streams]

    def server_shutdown(self, close_after: float | None) -> list[int]:
        """serverShutdown to every connection; close them 1001 after close_after seconds (None: never)."""
        sessions = list(self.sessions.values())
        loop = asyncio.get_running_loop()
        for session in sessions:
            session.server_shutdown()
            if close_after is not None:
                loop.call_later(close_after, session.close, 1001, "Server shutdown", "server_shutdown")
        return [s.id for s in sessions]

    def faults_json(self) -> dict[str, Any]:
        return {
            "pending": self.faults.pending(),
            "stalled": [s.id for s in self.sessions.values() if s.stalled],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "faults": self.faults_json(),
            "connections": [s.to_json() for s in self.sessions.values()],
            "replay": None
            if self.capture is None
            else {"speed": self.config.replay_speed, **self.capture.to_json()},
        }

    @property
    def active(self) -> bool:
        """Any stream connection opened since start-up or the last reset."""
        return self.stats.connections_opened > 0 or bool(self.sessions)

    def stats_json(self) -> dict[str, Any]:
        return self.stats.to_json(len(self.sessions))


class HandshakeError(ValueError):
    """A connection request refused with HTTP 400."""


def _handshake(websocket: WebSocket, names_text: str) -> tuple[list[str], bool]:
    """(stream names, micro) of a connection request; raises HandshakeError with the reason."""
    names = list(dict.fromkeys(n for n in names_text.split("/") if n))
    invalid = [n for n in names if not valid_stream(n)]
    if invalid:
        raise HandshakeError(f"Invalid request: invalid stream {invalid[0]!r}")
    if len(names) > MAX_STREAMS:
        raise HandshakeError(
            f"Invalid request: {len(names)} streams; a connection listens to at most {MAX_STREAMS}"
        )
    unit = websocket.query_params.get("timeUnit")
    if unit is not None and unit.upper() not in ("MICROSECOND", "MILLISECOND"):
        raise HandshakeError(f"Invalid request: timeUnit {unit!r}; use MICROSECOND or MILLISECOND")
    return names, unit is not None and unit.upper() == "MICROSECOND"


def routes(hub: WsHub) -> list[BaseRoute]:
    """The WebSocket routes: /ws, /ws/<streams>, /stream."""

    async def serve(websocket: WebSocket, names_text: str, combined: bool) -> None:
        try:
            names, micro = _handshake(websocket, names_text)
        except HandshakeError as refused:
            await websocket.send_denial_response(JSONResponse({"code": 2, "msg": str(refused)}, 400))
            return
        extension = websocket.scope.get("extensions", {}).get(EXTENSION)
        if extension is None:  # another ASGI server: no frame-level access, refuse (HTTP 403)
            await websocket.close(1011, "run the simulator with python -m warehouse_assets.simulator")
            return
        await websocket.accept()
        session = Session(hub, extension["link"], websocket.url.path, combined, micro)
        hub.open(session)
        try:
            hub.subscribe(session, names)
            await session.run(websocket)
        finally:
            hub.closed(session)

    async def raw(websocket: WebSocket) -> None:
        await serve(websocket, websocket.path_params.get("streams", ""), False)

    async def combined(websocket: WebSocket) -> None:
        await serve(websocket, websocket.query_params.get("streams", ""), True)

    return [
        WebSocketRoute("/ws", raw),
        WebSocketRoute("/ws/{streams:path}", raw),
        WebSocketRoute("/stream", combined),
    ]
