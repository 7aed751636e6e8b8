"""Offline Binance exchange simulator: the real spot REST and WebSocket stream protocols over synthetic or archived data.

Run it with `python -m warehouse_assets.simulator` (see __main__.py and --help), or from tests with
`warehouse_assets.simulator.testing.run_simulator()`. It never imports warehouse_assets.lib, so a
client bug cannot hide behind a matching server bug.

Modules: config (settings, CLI), clock (the market clock and its offset), protocol (Binance REST
constants and error bodies), symbols (listed symbols), market (synthetic price/volume generation),
trades (synthetic aggregate trades that add up to the klines), synthetic and archive (the two kline
sources), klines (request selection semantics), weights (request weight, 429, 418 bans), faults
(REST fault switches), stats, gate (the per-request pipeline), rest (Binance routes), agg_trades
(GET /api/v3/aggTrades), archive_http (data.binance.vision files), control (/_sim routes), app (the
ASGI app), testing (a subprocess harness).
WebSocket streams: ws (routes /ws and /stream, the hub of connections and feeds), ws_control (its
/_sim/ws and /_sim/clock control API and settings), ws_protocol (the uvicorn protocol with
frame-level access), ws_session (one connection: keepalive, lifetime, limits), ws_requests
(SUBSCRIBE and the other control messages), ws_wire (stream names, payloads, framing), ws_feed
(live aggTrade/trade/kline_1m per symbol), ws_kline (the running 1m kline), ws_rate (rate mode for
benchmarks), ws_replay (recorded captures), ws_faults (stream fault switches and counters).
"""
