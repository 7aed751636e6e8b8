"""The control API of the WebSocket streams (not Binance; no weight, never faulted), and their settings.

  GET  /_sim/ws          {"settings", "faults", "connections", "replay"}
  POST /_sim/ws          change settings: agg_trade_rate (0 = natural), ping_interval,
                         pong_timeout, lifetime_seconds, shutdown_notice_seconds (seconds; a
                         lifetime applies to connections opened afterwards)
  POST /_sim/ws/faults   {"drop": true | {"stream": name}}  abort those connections (no close frame)
                         {"stall": {"seconds": S (absent/0 = until cleared), "answer_pings": bool
                           (default true), "stream": name (optional)} | false}  stop writing
                           stream messages to the connections open now; answer_pings false makes
                           them silent: no pongs, pings, replies or events either
                         {"skip"|"repeat"|"malformed": {stream: N}}  see ws_faults.py
  POST /_sim/ws/shutdown {"close_after_seconds": S | null}  serverShutdown to every connection,
                         then close 1001 "Server shutdown" after S s (null: stay open)
  GET  /_sim/ws/stats    the counters (ws_faults.WsStats; also under "ws" in GET /_sim/stats)
  GET/POST /_sim/clock   {"offset_ms": N}  the market clock's offset (clock.py); live feeds restart
POST /_sim/reset also resets these settings, faults (stalls end), the clock offset and the ws stats;
GET /_sim/stats carries them under "ws".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.config import SimulatorConfig
from warehouse_assets.simulator.gate import json_response

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws import WsHub


@dataclass
class WsSettings:
    """Run-time settings of the stream endpoint (seconds; agg_trade_rate in messages/s per symbol)."""

    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    lifetime_seconds: float = 86_400.0
    shutdown_notice_seconds: float = 600.0
    agg_trade_rate: float = 0.0

    def updated(self, body: Any) -> WsSettings:
        """A copy with the fields of a POST /_sim/ws body; raises ValueError naming a bad field."""
        if not isinstance(body, dict):
            raise ValueError('the body must be a JSON object like {"agg_trade_rate": 100000}')
        names = {f.name for f in fields(self)}
        unknown = sorted(set(body) - names)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(names)}")
        for name, value in body.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            least = 0.0 if name in ("agg_trade_rate", "shutdown_notice_seconds") else 0.001
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value!r}")
        return replace(self, **{k: float(v) for k, v in body.items()})


def startup_settings(config: SimulatorConfig) -> WsSettings:
    return WsSettings(config.ws_ping_interval, config.ws_pong_timeout, config.ws_lifetime_seconds,
                      config.ws_shutdown_notice_seconds, config.ws_agg_trade_rate)  # fmt: skip


def routes(hub: WsHub) -> list[BaseRoute]:
    """/_sim/ws, /_sim/ws/faults, /_sim/ws/shutdown and /_sim/clock (see the module docstring)."""

    async def body_of(request: Request) -> Any:
        return json.loads(await request.body() or b"{}")

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            try:
                hub.update_settings(await body_of(request))
            except ValueError as exc:
                return json_response({"error": f"bad settings for POST /_sim/ws: {exc}"}, 400)
        return json_response(hub.to_json())

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return json_response(hub.faults_json())
        try:
            return json_response(hub.apply_faults(await body_of(request)))
        except ValueError as exc:
            return json_response({"error": f"bad faults for POST /_sim/ws/faults: {exc}"}, 400)

    async def shutdown(request: Request) -> Response:
        try:
            body = await body_of(request)
            after = body.get("close_after_seconds") if isinstance(body, dict) else "?"
            if after is not None and (
                isinstance(after, bool) or not isinstance(after, int | float) or after < 0
            ):
                raise ValueError(f"close_after_seconds must be a non-negative number or null, got {after!r}")
        except ValueError as exc:
            return json_response({"error": f"bad body for POST /_sim/ws/shutdown: {exc}"}, 400)
        return json_response({"sent_to": hub.server_shutdown(after)})

    async def stats(request: Request) -> Response:
        return json_response(hub.stats_json())

    async def clock_offset(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await body_of(request)
                offset = body.get("offset_ms") if isinstance(body, dict) else None
                if isinstance(offset, bool) or not isinstance(offset, int):
                    raise ValueError(f'the body must be {{"offset_ms": <integer>}}, got {body!r}')
            except ValueError as exc:
                return json_response({"error": f"bad body for POST /_sim/clock: {exc}"}, 400)
            clock.set_offset_ms(offset)
            hub.restart_feeds()
        return json_response({"offset_ms": clock.offset_ms(), "now_ms": clock.now_ms()})

    return [
        Route("/_sim/ws", settings, methods=["GET", "POST"]),
        Route("/_sim/ws/faults", faults, methods=["GET", "POST"]),
        Route("/_sim/ws/shutdown", shutdown, methods=["POST"]),
        Route("/_sim/ws/stats", stats, methods=["GET"]),
        Route("/_sim/clock", clock_offset, methods=["GET", "POST"]),
    ]
