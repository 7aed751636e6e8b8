"""The simulator's ASGI app: control routes, Binance REST routes, then the 404 fallback.

Later parts add their routes in `build_app`, before the fallback, from their own modules:
agg_trades (GET /api/v3/aggTrades), archive_http (the data.binance.vision /data/... files) and ws
(the WebSocket streams /ws, /stream and their /_sim controls). The WebSocket endpoint needs the
server protocol of ws_protocol.py, which __main__ gives uvicorn.
"""

from __future__ import annotations

import numpy as np
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from warehouse_assets.simulator import agg_trades, archive_http, clock, control, rest, ws, ws_control
from warehouse_assets.simulator.config import SimulatorConfig
from warehouse_assets.simulator.market import N_COLUMNS
from warehouse_assets.simulator.state import SimulatorState, build_state
from warehouse_assets.simulator.synthetic import SyntheticSource, render
from warehouse_assets.simulator.trades import TradeGenerator
from warehouse_assets.simulator.ws_replay import load_capture


def build_app(config: SimulatorConfig, state: SimulatorState | None = None) -> Starlette:
    """The app for a config (loads the archive or sets up the synthetic market)."""
    state = state or build_state(config)
    clock.set_offset_ms(config.clock_offset_ms)
    trades = None
    if isinstance(state.source, SyntheticSource):
        state.source.market.trades_per_day = config.trades_per_day  # before any symbol path is built
        trades = TradeGenerator(state.source.market)
        render(np.zeros(1, dtype=np.int64), np.zeros((1, N_COLUMNS), dtype=np.int64), 60_000, False)
        # ^ Arrow's string kernels take ~0.4 s on first use: pay it at start-up, not on a request
    capture = load_capture(list(config.replay)) if config.replay else None
    market = state.source.market if isinstance(state.source, SyntheticSource) and capture is None else None
    state.ws = ws.WsHub(config, market, capture)
    routes: list[BaseRoute] = [
        *control.routes(state),
        *ws_control.routes(state.ws),
        *ws.routes(state.ws),
        *rest.routes(state),
        agg_trades.route(state, trades),
        *archive_http.routes(state, trades),
        rest.fallback_route(state),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = state
    return app
