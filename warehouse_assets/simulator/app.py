"""The simulator's ASGI app: control routes, Binance REST routes, then the 404 fallback.

Later parts (WebSocket streams, data.binance.vision archive endpoints) add their routes in
`build_app`, before the fallback, from their own modules.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from warehouse_assets.simulator import control, rest
from warehouse_assets.simulator.config import SimulatorConfig
from warehouse_assets.simulator.state import SimulatorState, build_state


def build_app(config: SimulatorConfig, state: SimulatorState | None = None) -> Starlette:
    """The app for a config (loads the archive or sets up the synthetic market)."""
    state = state or build_state(config)
    routes: list[BaseRoute] = [*control.routes(state), *rest.routes(state), rest.fallback_route(state)]
    app = Starlette(routes=routes)
    app.state.simulator = state
    return app
