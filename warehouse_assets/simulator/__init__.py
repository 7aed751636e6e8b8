"""Offline Binance exchange simulator: the real spot REST protocol over synthetic or archived klines.

Run it with `python -m warehouse_assets.simulator` (see __main__.py), or from tests with
`warehouse_assets.simulator.testing.run_simulator()`. It never imports warehouse_assets.lib, so a
client bug cannot hide behind a matching server bug.

Modules: config (settings, CLI), protocol (Binance constants and error bodies), symbols (listed
symbols), market (synthetic price/volume generation), synthetic and archive (the two kline
sources), klines (request selection semantics), weights (request weight, 429, 418 bans), faults
(fault switches), stats, gate (the per-request pipeline), rest (Binance routes), control (/_sim
routes), app (the ASGI app), testing (a subprocess harness).
"""
