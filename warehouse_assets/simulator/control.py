"""The control API (not part of Binance): read and set faults, reset, statistics.

GET /_sim/faults    -> the current faults JSON
PUT /_sim/faults    -> replace the faults (absent fields take their defaults); answers the new faults
POST /_sim/reset    -> clear faults (back to the start-up ones), weight counters, bans and statistics
                       (WebSocket settings, faults and counters and the clock offset too)
GET /_sim/stats     -> {"requests", "by_path", "weight_by_window", "status_counts"}, plus "ws" (the
                       GET /_sim/ws/stats counters) once a stream connection was opened since the reset
Control calls cost no weight and are never faulted. The WebSocket controls (/_sim/ws*, /_sim/clock)
live in ws.py.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from warehouse_assets.simulator.faults import Faults
from warehouse_assets.simulator.gate import json_response
from warehouse_assets.simulator.state import SimulatorState


def routes(state: SimulatorState) -> list[BaseRoute]:
    """The /_sim/* routes (register them before the Binance fallback route)."""

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                data = json.loads(await request.body() or b"{}")
                state.faults.replace(Faults.from_json(data))
            except (ValueError, TypeError) as exc:
                return json_response({"error": f"bad faults for PUT /_sim/faults: {exc}"}, 400)
        return json_response(state.faults.current.to_json())

    async def reset(request: Request) -> Response:
        state.reset()
        return json_response({"reset": True})

    async def stats(request: Request) -> Response:
        body = state.stats.to_json()
        if state.ws is not None and state.ws.active:  # the REST-only shape stays as it was
            body["ws"] = state.ws.stats_json()
        return json_response(body)

    return [
        Route("/_sim/faults", faults, methods=["GET", "PUT"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/stats", stats, methods=["GET"]),
    ]
