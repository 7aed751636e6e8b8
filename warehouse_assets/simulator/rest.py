"""Binance spot REST market-data endpoints: ping, time, exchangeInfo and klines.

Shapes, parameters, weights and error codes follow the Binance spot API documentation.
"""

from __future__ import annotations

import json
import re

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.gate import Handler, binance_endpoint, json_response
from warehouse_assets.simulator.klines import KlineQuery, to_micros
from warehouse_assets.simulator.protocol import (
    INTERVAL_MS,
    INVALID_INTERVAL,
    INVALID_PARAMETER,
    INVALID_SYMBOL,
    error_body,
    illegal_chars,
    mandatory_missing,
    rate_limit_interval,
)
from warehouse_assets.simulator.state import SimulatorState
from warehouse_assets.simulator.symbols import exchange_info_entry

SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
SYMBOL_LEGAL = "^[A-Z0-9-_.]{1,20}$"
SYMBOLS_LEGAL = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
DIGITS_RE = re.compile(r"^[0-9]{1,20}$")
UTC_ZONES = {"0", "+0", "-0", "00:00", "+00:00", "-00:00", "0:00", "+0:00"}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 20, "klines": 2, "unknown": 1}


class BadRequest(Exception):
    """A request Binance would refuse with HTTP 400 and this error body."""

    def __init__(self, body: dict[str, object], status: int = 400) -> None:
        super().__init__(body["msg"])
        self.body = body
        self.status = status


def wants_micros(request: Request) -> bool:
    """X-MBX-TIME-UNIT: MICROSECOND (any case) asks for times in microseconds."""
    unit = request.headers.get("x-mbx-time-unit", "").strip().upper()
    if unit in ("", "MILLISECOND"):
        return False
    if unit == "MICROSECOND":
        return True
    raise BadRequest(error_body(-1100, "Illegal characters found in a parameter."))


def _int_param(params: QueryParams, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not DIGITS_RE.match(raw):
        raise BadRequest(illegal_chars(name))
    return int(raw)


def parse_klines(request: Request, state: SimulatorState) -> KlineQuery:
    """Validate a klines request in Binance's way; raises BadRequest with Binance's error body."""
    params = request.query_params
    symbol = params.get("symbol")
    if not symbol:
        raise BadRequest(mandatory_missing("symbol"))
    interval = params.get("interval")
    if not interval:
        raise BadRequest(mandatory_missing("interval"))
    if not SYMBOL_RE.match(symbol):
        raise BadRequest(illegal_chars("symbol", SYMBOL_LEGAL))
    start, end, limit = (_int_param(params, name) for name in ("startTime", "endTime", "limit"))
    if limit is not None and not 1 <= limit <= 1000:
        raise BadRequest(INVALID_PARAMETER)
    if symbol not in state.source.listings():
        raise BadRequest(INVALID_SYMBOL)
    if interval not in INTERVAL_MS:
        raise BadRequest(INVALID_INTERVAL)
    if not state.source.serves(interval):
        served = [name for name in INTERVAL_MS if state.source.serves(name)]
        msg = f"Invalid interval. The simulator does not serve '{interval}' klines; it serves {', '.join(served)}."
        raise BadRequest(error_body(-1120, msg))
    zone = params.get("timeZone")
    if zone is not None and zone not in UTC_ZONES:
        raise BadRequest(error_body(-1130, f"Invalid data sent for a parameter. The simulator only serves timeZone 0, not '{zone}'."))  # fmt: skip
    return KlineQuery(
        symbol=symbol,
        interval=interval,
        start_us=None if start is None else to_micros(start),
        end_us=None if end is None else to_micros(end),
        limit=500 if limit is None else limit,
        micro=wants_micros(request),
    )


def routes(state: SimulatorState) -> list[BaseRoute]:
    """The Binance REST routes, each behind the weight/fault gate."""

    async def ping(request: Request) -> Response:
        return json_response({})

    async def server_time(request: Request) -> Response:
        try:
            scale = 1000 if wants_micros(request) else 1
        except BadRequest as bad:
            return json_response(bad.body, bad.status)
        return json_response({"serverTime": clock.now_ms() * scale})

    async def exchange_info(request: Request) -> Response:
        try:
            wanted = _wanted_symbols(request.query_params, set(state.source.listings()))
            scale = 1000 if wants_micros(request) else 1
        except BadRequest as bad:
            return json_response(bad.body, bad.status)
        listings = state.source.listings()
        interval, num = rate_limit_interval(state.config.window_seconds)
        body = {
            "timezone": "UTC",
            "serverTime": clock.now_ms() * scale,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": interval, "intervalNum": num,
                 "limit": state.config.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
            ],
            "exchangeFilters": [],
            "symbols": [
                exchange_info_entry(s.symbol, s.base_asset, s.quote_asset, s.tick_e8, s.lot_e8)
                for name, s in listings.items()
                if wanted is None or name in wanted
            ],
        }  # fmt: skip
        return json_response(body)

    async def klines(request: Request) -> Response:
        try:
            query = parse_klines(request, state)
        except BadRequest as bad:
            return json_response(bad.body, bad.status)
        if query.start_us is not None and query.end_us is not None and query.start_us > query.end_us:
            return json_response([])
        missing = state.faults.missing(query.symbol)
        opens, rows = state.source.klines(query, missing, clock.now_ms())
        overrides = state.faults.overrides(query.symbol)
        if overrides:
            rows = [overrides.get(open_ms, row) for open_ms, row in zip(opens, rows, strict=True)]
        return Response("[" + ",".join(rows) + "]", media_type="application/json")

    def route(path: str, handler: Handler, weight: int) -> Route:
        return Route(path, binance_endpoint(state, handler, weight), methods=ALL_METHODS)

    return [
        route("/api/v3/ping", ping, WEIGHTS["ping"]),
        route("/api/v3/time", server_time, WEIGHTS["time"]),
        route("/api/v3/exchangeInfo", exchange_info, WEIGHTS["exchangeInfo"]),
        route("/api/v3/klines", klines, WEIGHTS["klines"]),
    ]


def fallback_route(state: SimulatorState) -> Route:
    """Unknown paths: 404 with a Binance-style body (weight 1). Must be the last route of the app."""

    async def unknown(request: Request) -> Response:
        msg = f"Unknown path {request.url.path}; the simulator serves /api/v3/ping, time, exchangeInfo and klines."
        return json_response(error_body(-1000, msg), 404)

    endpoint = binance_endpoint(state, unknown, WEIGHTS["unknown"], ALL_METHODS)
    return Route("/{path:path}", endpoint, methods=ALL_METHODS)


def _wanted_symbols(params: QueryParams, listed: set[str]) -> set[str] | None:
    symbol, symbols = params.get("symbol"), params.get("symbols")
    if symbol is not None and symbols is not None:
        raise BadRequest(error_body(-1128, "Combination of optional parameters invalid."))
    if symbol is not None:
        if not SYMBOL_RE.match(symbol):
            raise BadRequest(illegal_chars("symbol", SYMBOL_LEGAL))
        names = [symbol]
    elif symbols is not None:
        try:
            parsed = json.loads(symbols)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(n, str) and SYMBOL_RE.match(n) for n in parsed):
            raise BadRequest(illegal_chars("symbols", SYMBOLS_LEGAL))
        names = parsed
    else:
        return None
    if any(name not in listed for name in names):
        raise BadRequest(INVALID_SYMBOL)
    return set(names)
