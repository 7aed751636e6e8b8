"""What every Binance request goes through: weight and bans, faults, statistics, common headers.

Control routes (/_sim/*) do not use this: they cost no weight and are never faulted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_assets.simulator.faults import Scripted
from warehouse_assets.simulator.protocol import INTERNAL_ERROR, banned, error_body, too_much_weight
from warehouse_assets.simulator.state import SimulatorState

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger(__name__)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON like Binance's, Content-Type: application/json."""
    text = json.dumps(body, separators=(",", ":"))
    return Response(text, status_code=status, headers=headers, media_type="application/json")


def _scripted_response(state: SimulatorState, scripted: Scripted, now: float) -> Response:
    body = scripted.body
    if body is None:
        if scripted.status == 429:
            body = too_much_weight(state.config.weight_limit, state.config.window_seconds)
        elif scripted.status == 418:
            body = banned(int((now + (scripted.retry_after or 0)) * 1000))
        else:
            body = INTERNAL_ERROR
    headers = {} if scripted.retry_after is None else {"Retry-After": str(scripted.retry_after)}
    return json_response(body, scripted.status, headers)


def binance_endpoint(
    state: SimulatorState,
    handler: Handler,
    weight: int | Callable[[Request], int],
    methods: Collection[str] = ("GET", "HEAD"),
) -> Handler:
    """Wrap a Binance route handler with the weight limiter, the fault switches and the statistics."""

    async def endpoint(request: Request) -> Response:
        now = time.time()
        ip = request.client.host if request.client else "unknown"
        cost = weight(request) if callable(weight) else weight
        extra = state.faults.take_extra_weight()
        if extra:
            state.limiter.add(ip, extra, now)
        decision = state.limiter.admit(ip, cost, now)
        delay_ms = state.faults.current.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        response: Response
        if decision.status != 200:
            response = json_response(
                decision.body, decision.status, {"Retry-After": str(decision.retry_after)}
            )
        elif request.method not in methods:
            msg = f"Method {request.method} is not allowed on {request.url.path}; use {'/'.join(methods)}."
            response = json_response(error_body(-1000, msg), 405)
        elif (scripted := state.faults.take_scripted()) is not None:
            response = _scripted_response(state, scripted, now)
        elif (failure := state.faults.take_failure()) is not None:
            response = json_response(INTERNAL_ERROR, failure)
        else:
            try:
                response = await handler(request)
            except Exception as exc:  # answer like a Binance 5XX and keep serving
                log.exception("simulator bug while answering %s", request.url)
                response = json_response(error_body(-1000, f"An unknown error occurred: {exc!r}"), 500)
        response.headers[state.weight_header] = str(decision.used)
        state.stats.record(request.url.path, response.status_code, cost + extra, decision.window_start_ms)
        return response

    return endpoint
