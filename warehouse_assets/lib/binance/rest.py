"""Async client for Binance spot's public REST API: exchangeInfo, server time, klines and aggregate
trades over any range.

Every request draws from the process-wide `WeightBudget` of its base URL, learns the real limit from
exchangeInfo and keeps the server-clock estimate fresh from /api/v3/time. 429/418 pause every caller
sharing the budget until `Retry-After`; 5xx, timeouts and connection errors are retried with
`retry.Backoff`. Bodies are parsed by `wire`, the one place that knows Binance's format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from warehouse_assets.lib import settings
from warehouse_assets.lib.binance import wire
from warehouse_assets.lib.binance.wire import ExchangeInfo, SymbolInfo
from warehouse_assets.lib.errors import (
    BinanceApiError,
    ExchangeUnavailableError,
    MalformedAggTradeError,
    RateLimitedError,
    UnknownSymbolError,
)
from warehouse_assets.lib.ratelimit import Reservation, WeightBudget, budget_for
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA, KLINE_SCHEMA, Kline, table_to_klines
from warehouse_assets.lib.retry import Backoff

log = logging.getLogger(__name__)

TimeUnit = Literal["MILLISECOND", "MICROSECOND"]

PING = "/api/v3/ping"
TIME = "/api/v3/time"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
KLINES = "/api/v3/klines"
AGG_TRADES = "/api/v3/aggTrades"

# Request weight per endpoint (binance-spot-api-docs rest-api.md; aggTrades 2 -> 4 on 2025-03-10).
ENDPOINT_WEIGHT = {PING: 1, TIME: 1, EXCHANGE_INFO: 20, KLINES: 2, AGG_TRADES: 4}

KLINES_PER_REQUEST = 1000  # Binance's maximum `limit` for /api/v3/klines
AGG_TRADES_PER_REQUEST = 1000  # Binance's maximum `limit` for /api/v3/aggTrades
# Sent with every aggTrades request whatever the client's time_unit: trade times then carry the µs the
# archives carry since 2025 (the parser still decides ms or µs per value by magnitude).
_MICROSECOND_TIMES = {"X-MBX-TIME-UNIT": "MICROSECOND"}
UNKNOWN_SYMBOL_CODE = -1121

_CLOCK_TASK = "clock-sync"
_LIMITS_TASK = "limits-discovery"


@dataclass(frozen=True, slots=True)
class _Reply:
    text: str
    reservation: Reservation
    used_weight: dict[int, int]  # X-MBX-USED-WEIGHT-* as {window ms: used}


@dataclass(frozen=True, slots=True)
class _AggTradesPage:
    table: pa.Table  # records.AGG_TRADE_SCHEMA
    text: str  # the body, to quote a row when the page does not continue the one before


@dataclass(frozen=True, slots=True)
class _Page:
    start_ms: int
    end_ms: int
    last_of_chunk: bool
    chunk_start_ms: int


class BinanceRestClient:
    """Binance spot public REST. Use as `async with BinanceRestClient() as client:` in one event loop."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        time_unit: TimeUnit = "MILLISECOND",
        max_in_flight: int = 8,
        max_attempts: int = 8,
        backoff: Backoff | None = None,
        timeout_seconds: float = 10.0,
        max_pause_seconds: float = 900.0,
        max_rate_limit_retries: int = 20,
        budget: WeightBudget | None = None,
        discover_rate_limits: bool = True,
    ) -> None:
        if time_unit not in ("MILLISECOND", "MICROSECOND"):
            raise ValueError(f"time_unit must be 'MILLISECOND' or 'MICROSECOND', got {time_unit!r}")
        if max_in_flight < 1 or max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")
        self.base_url = (base_url or settings.binance_api_url()).rstrip("/")
        self.time_unit = time_unit
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.max_pause_seconds = max_pause_seconds
        self.max_rate_limit_retries = max_rate_limit_retries
        self.budget = budget or budget_for(self.base_url)
        self.discover_rate_limits = discover_rate_limits
        headers = {"X-MBX-TIME-UNIT": "MICROSECOND"} if time_unit == "MICROSECOND" else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_seconds,
            limits=httpx.Limits(
                max_connections=max_in_flight + 2, max_keepalive_connections=max_in_flight + 2
            ),
        )
        # Limits concurrent requests of this client; the budget limits the weight of the whole process.
        self._in_flight = asyncio.Semaphore(max_in_flight)

    async def __aenter__(self) -> BinanceRestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --------------------------------------------------------------------------- simple endpoints

    async def ping(self) -> None:
        await self._ensure_ready(symbol=None)
        await self._get(PING, {})

    async def server_time(self) -> int:
        """The server's clock in epoch ms (also refreshes the budget's clock estimate)."""
        return int(await self._sync_clock())

    async def exchange_info(self, symbols: Sequence[str] | None = None) -> ExchangeInfo:
        """exchangeInfo for some symbols (or all); adopts its REQUEST_WEIGHT limit for the shared budget."""
        await self._ensure_ready(symbol=None, need_limits=False)
        return await self._fetch_exchange_info(symbols)

    async def validate_symbols(self, symbols: Iterable[str]) -> dict[str, SymbolInfo]:
        """Each symbol's exchangeInfo entry; raises `UnknownSymbolError` naming every unlisted symbol.

        A listed symbol is returned whatever its status (TRADING, BREAK, ...): the caller decides.
        """
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        try:
            info = await self.exchange_info(wanted)
        except UnknownSymbolError:
            if len(wanted) == 1:
                raise
            # Binance answers -1121 for the whole list without saying which one; the full list tells.
            info = await self.exchange_info()
        missing = [symbol for symbol in wanted if symbol not in info.symbols]
        if missing:
            raise UnknownSymbolError(missing)
        return {symbol: info.symbols[symbol] for symbol in wanted}

    # ------------------------------------------------------------------------------------ klines

    async def klines(self, symbol: str, start_ms: int, end_ms: int, interval: str = "1m") -> list[Kline]:
        """Every closed kline with open time in [start_ms, end_ms), ordered, each open time once.

        Pages of 1000 are fetched up to `max_in_flight` at a time. Nothing is returned if any page is
        malformed (`MalformedKlineError`) or fails.
        """
        return table_to_klines(await self.kline_table(symbol, start_ms, end_ms, interval), interval)

    async def kline_table(self, symbol: str, start_ms: int, end_ms: int, interval: str = "1m") -> pa.Table:
        """Like `klines`, as one columnar batch (`records.KLINE_SCHEMA`): the bulk path, no per-value objects."""
        tables = [t async for t in self.iter_kline_tables(symbol, start_ms, end_ms, interval)]
        return pa.concat_tables(tables) if tables else KLINE_SCHEMA.empty_table()

    async def iter_klines(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        interval: str = "1m",
        chunk_minutes: int | None = None,
    ) -> AsyncIterator[list[Kline]]:
        """Like `klines`, yielded chunk by chunk (ordered, non-empty) while later pages download."""
        async for table in self.iter_kline_tables(symbol, start_ms, end_ms, interval, chunk_minutes):
            yield table_to_klines(table, interval)

    async def iter_kline_tables(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        interval: str = "1m",
        chunk_minutes: int | None = None,
    ) -> AsyncIterator[pa.Table]:
        """Closed klines of [start_ms, end_ms) as ordered, non-empty batches, while later pages download.

        `chunk_minutes` (default: one page of 1000 klines) sets how much time each yielded batch covers.
        A malformed page raises before its chunk is yielded; earlier chunks were already yielded.
        """
        async for _, _, table in self.iter_kline_windows(symbol, start_ms, end_ms, interval, chunk_minutes):
            if table.num_rows:
                yield table

    async def iter_kline_windows(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        interval: str = "1m",
        chunk_minutes: int | None = None,
    ) -> AsyncIterator[tuple[int, int, pa.Table]]:
        """Every chunk of [start_ms, end_ms) as (chunk start, chunk end, its closed klines), empty ones too.

        Chunks of `chunk_minutes` are aligned on start_ms. Up to `2 * max_in_flight` pages download ahead
        across chunk boundaries, so a consumer that writes one chunk while the next downloads keeps the
        request pipe full. A malformed page raises before its chunk is yielded.
        """
        step = wire.interval_ms(interval)
        if start_ms >= end_ms:
            return
        await self._ensure_ready(symbol=symbol)
        pages = _plan_pages(start_ms, end_ms, step, chunk_minutes)
        # A bounded look-ahead keeps the pipe full without buffering a whole multi-year range in memory.
        lookahead = 2 * self.max_in_flight
        upcoming = iter(pages)
        pending: deque[tuple[_Page, asyncio.Task[pa.Table]]] = deque()

        def schedule() -> None:
            while len(pending) < lookahead:
                page = next(upcoming, None)
                if page is None:
                    return
                task = asyncio.create_task(self._fetch_page(symbol, interval, page.start_ms, page.end_ms))
                pending.append((page, task))

        chunk: list[pa.Table] = []
        try:
            schedule()
            while pending:
                page, task = pending.popleft()
                page_table = await task
                schedule()
                if page_table.num_rows:
                    chunk.append(page_table)
                if page.last_of_chunk:
                    table = pa.concat_tables(chunk) if chunk else KLINE_SCHEMA.empty_table()
                    yield page.chunk_start_ms, page.end_ms, table
                    chunk = []
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)

    async def _fetch_page(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> pa.Table:
        """Closed klines with open time in [start_ms, end_ms); asks again if the server stopped early."""
        step = wire.interval_ms(interval)
        parts: list[pa.Table] = []
        cursor = start_ms
        while cursor < end_ms:
            await self._ensure_ready(symbol=symbol)  # a long backfill keeps its clock estimate fresh
            params: dict[str, str | int] = {
                "symbol": symbol,
                "interval": interval,
                "startTime": self._wire_time(cursor),
                "endTime": self._wire_time(end_ms) - 1,  # Binance's endTime is inclusive
                "limit": KLINES_PER_REQUEST,
            }
            reply = await self._get(KLINES, params, symbols=(symbol,))
            received = wire.parse_klines_table(reply.text, symbol=symbol, interval=interval)
            if received.num_rows == 0:
                break
            open_ms = received.column("open_time").cast(pa.int64())
            close_ms = received.column("close_time").cast(pa.int64())
            # The newest row may still be open: keep only klines that had closed when the server answered.
            keep = pc.and_(
                pc.and_(pc.greater_equal(open_ms, cursor), pc.less(open_ms, end_ms)),
                pc.less(close_ms, reply.reservation.closed_before_ms),
            )
            parts.append(received.filter(keep))
            if received.num_rows < KLINES_PER_REQUEST:
                break
            next_cursor = int(pc.max(open_ms).as_py()) + step
            if next_cursor <= cursor:
                break  # the server ignored startTime; stop rather than loop forever
            cursor = next_cursor
        if not parts:
            return KLINE_SCHEMA.empty_table()
        table = pa.concat_tables(parts)
        return table.take(pc.sort_indices(table, sort_keys=[("open_time", "ascending")]))

    def _wire_time(self, ms: int) -> int:
        return ms * 1000 if self.time_unit == "MICROSECOND" else ms

    # ---------------------------------------------------------------------------------- aggTrades

    async def agg_trades(self, symbol: str, start_us: int, end_us: int) -> pa.Table:
        """Every aggregate trade with ts in [start_us, end_us) as one table (see `iter_agg_trades`)."""
        tables = [table async for table in self.iter_agg_trades(symbol, start_us, end_us)]
        return pa.concat_tables(tables) if tables else AGG_TRADE_SCHEMA.empty_table()

    async def agg_trades_from(self, symbol: str, from_id: int, limit: int = 1) -> pa.Table:
        """Up to `limit` aggregate trades from id `from_id` on (inclusive), ts in µs; empty if none yet.

        Tells whether an archive day is complete: the trade after the file's last id must lie after
        the day. Raises `MalformedAggTradeError` if the answer does not start at `from_id`.
        """
        if from_id < 0:
            raise ValueError(f"from_id must be a non-negative aggregate trade id, got {from_id}")
        if not 1 <= limit <= AGG_TRADES_PER_REQUEST:
            raise ValueError(f"limit must be in 1..{AGG_TRADES_PER_REQUEST}, got {limit}")
        page = await self._agg_trades_page(symbol, {"fromId": from_id, "limit": limit})
        _check_agg_page(symbol, page, from_id, limit, previous=None)
        return page.table

    async def oldest_agg_trade(self, symbol: str, start_us: int, end_us: int | None = None) -> pa.Table:
        """The oldest aggregate trade with ts in [start_us, end_us) (end None: from start_us on), or an empty table.

        Two of these tell which aggregate ids a day holds (its first trade, and the first trade after it),
        so an archive file cut short is caught.
        """
        if start_us % 1000:  # one row per answer: a trade earlier in the same ms would hide the one wanted
            raise ValueError(f"start_us must be a whole millisecond, got {start_us}")
        params = {"startTime": start_us // 1000, "limit": 1}
        if end_us is not None:
            params["endTime"] = (end_us - 1) // 1000  # Binance: inclusive
        table = (await self._agg_trades_page(symbol, params)).table
        ts = table.column("ts").cast(pa.int64())
        inside = pc.greater_equal(ts, start_us)
        if end_us is not None:
            inside = pc.and_(inside, pc.less(ts, end_us))
        return table.filter(inside)

    async def iter_agg_trades(
        self, symbol: str, start_us: int, end_us: int, *, tables_of_pages: int = 100
    ) -> AsyncIterator[pa.Table]:
        """Every aggregate trade with ts in [start_us, end_us), ordered by id, each once (`AGG_TRADE_SCHEMA`).

        Yields non-empty tables of up to `tables_of_pages` pages of 1000 trades while later pages
        download. The first request asks for the window's oldest 1000 trades (startTime/endTime, in
        inclusive ms; trimmed to the µs window afterwards); every later page by `fromId` alone, so no
        trade is asked for twice. Aggregate ids are contiguous, so page k starts at first id + 1000 k
        and up to `2 * max_in_flight` pages download ahead, fewer near the end of the window when the
        trade rate so far says fewer remain. Each page must start at the id asked for and continue the
        trade-id chain (`MalformedAggTradeError` names the ids otherwise, e.g. a hole in the exchange's
        ids); paging stops at the first short page or the first page reaching past end_us.
        """
        if tables_of_pages < 1:
            raise ValueError(f"tables_of_pages must be at least 1, got {tables_of_pages}")
        if start_us < 0:
            raise ValueError(f"start_us must be a non-negative epoch time in µs, got {start_us}")
        if start_us >= end_us:
            return
        window = {"startTime": start_us // 1000, "endTime": (end_us - 1) // 1000}  # Binance: inclusive
        page = await self._agg_trades_page(symbol, {**window, "limit": AGG_TRADES_PER_REQUEST})
        if page.table.num_rows == 0:
            return
        _check_agg_page(symbol, page, None, AGG_TRADES_PER_REQUEST, previous=None)
        first_id = int(page.table.column("trade_id")[0].as_py())
        first_ts = _ts_us(page.table, 0)
        lookahead = 2 * self.max_in_flight
        next_from_id = first_id + AGG_TRADES_PER_REQUEST
        pending: deque[tuple[int, asyncio.Task[_AggTradesPage]]] = deque()

        def pages_wanted(last_id: int, last_ts: int) -> int:
            """Pages after the one ending at last_id worth having in flight: what the trade rate so far
            says [last_ts, end_us) still holds, plus one; never more than the look-ahead."""
            trades, span = last_id - first_id, last_ts - first_ts
            if trades <= 0 or span <= 0:
                return lookahead
            expected = (end_us - last_ts) * trades / span
            return max(1, min(lookahead, math.ceil(expected / AGG_TRADES_PER_REQUEST) + 1))

        def schedule(wanted: int) -> None:
            nonlocal next_from_id
            while len(pending) < wanted:
                params = {"fromId": next_from_id, "limit": AGG_TRADES_PER_REQUEST}
                pending.append((next_from_id, asyncio.create_task(self._agg_trades_page(symbol, params))))
                next_from_id += AGG_TRADES_PER_REQUEST

        batch: list[pa.Table] = []
        pages_in_batch = 0
        try:
            while True:
                table = page.table
                last_ts = _ts_us(table, -1) if table.num_rows else end_us
                done = table.num_rows < AGG_TRADES_PER_REQUEST or last_ts >= end_us
                if not done:
                    schedule(pages_wanted(int(table.column("trade_id")[-1].as_py()), last_ts))
                ts = table.column("ts").cast(pa.int64())
                inside = table.filter(pc.and_(pc.greater_equal(ts, start_us), pc.less(ts, end_us)))
                if inside.num_rows:
                    batch.append(inside)
                pages_in_batch += 1
                if batch and (done or pages_in_batch >= tables_of_pages):
                    yield pa.concat_tables(batch)
                    batch, pages_in_batch = [], 0
                if done:
                    return
                from_id, task = pending.popleft()
                previous = page
                page = await task
                _check_agg_page(symbol, page, from_id, AGG_TRADES_PER_REQUEST, previous=previous)
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)

    async def _agg_trades_page(self, symbol: str, params: Mapping[str, int]) -> _AggTradesPage:
        await self._ensure_ready(symbol=symbol)  # a long backfill keeps its clock estimate fresh
        reply = await self._get(
            AGG_TRADES, {"symbol": symbol, **params}, symbols=(symbol,), headers=_MICROSECOND_TIMES
        )
        return _AggTradesPage(wire.parse_agg_trades_table(reply.text, symbol=symbol), reply.text)

    # ----------------------------------------------------------------------- budget housekeeping

    async def _ensure_ready(self, *, symbol: str | None, need_limits: bool = True) -> None:
        """Before the first requests: a server-clock sample, and the real weight limit (one caller does each)."""
        need_limits = need_limits and self.discover_rate_limits
        while True:
            if self.budget.clock_sync_due() and self.budget.try_claim(_CLOCK_TASK):
                try:
                    await self._sync_clock()
                finally:
                    self.budget.release(_CLOCK_TASK)
                continue
            if need_limits and not self.budget.limits_known and self.budget.try_claim(_LIMITS_TASK):
                try:
                    # One symbol keeps the answer small; an unknown symbol fails here with its name.
                    await self._fetch_exchange_info([symbol] if symbol else None)
                finally:
                    self.budget.release(_LIMITS_TASK)
                continue
            if self.budget.clock_synced and (self.budget.limits_known or not need_limits):
                return
            await asyncio.sleep(0.01)  # another caller is doing it

    async def _sync_clock(self) -> float:
        # The very first sample also pays for the TCP/TLS handshake; a second one on the warm
        # connection bounds the offset far better (the budget keeps the tighter sample).
        samples = 1 if self.budget.clock_synced else 2
        server_ms = 0.0
        for _ in range(samples):
            sent_at = time.time()
            reply = await self._get(TIME, {})
            received_at = time.time()
            server_ms = wire.parse_server_time(reply.text)
            self.budget.observe_server_time(server_ms, sent_at, received_at)
        return server_ms

    async def _fetch_exchange_info(self, symbols: Sequence[str] | None) -> ExchangeInfo:
        params: dict[str, str] = {}
        if symbols:
            if len(symbols) == 1:
                params["symbol"] = symbols[0]
            else:
                params["symbols"] = json.dumps(list(symbols), separators=(",", ":"))
        reply = await self._get(EXCHANGE_INFO, params, symbols=tuple(symbols or ()))
        info = wire.parse_exchange_info(reply.text)
        weight_limit = info.request_weight_limit()
        if weight_limit is not None:
            if self.budget.configure(weight_limit.limit, weight_limit.window_ms):
                # What a window of the new length already holds is only known from this answer's header.
                self.budget.observe_used_weight(reply.reservation, reply.used_weight)
        return info

    # -------------------------------------------------------------------------------- transport

    async def _get(
        self,
        path: str,
        params: Mapping[str, str | int],
        *,
        symbols: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> _Reply:
        """One GET with the budget, 429/418 pauses and retries of transient failures."""
        weight = ENDPOINT_WEIGHT[path]
        symbol = ", ".join(symbols) or None  # for messages
        delays = self.backoff.delays()
        failures = 0
        refusals = 0
        problem = ""
        while True:
            paused = self.budget.paused_for()
            if paused > self.max_pause_seconds:  # another caller was told to stop for that long
                raise RateLimitedError(
                    path, status=418, retry_after=paused, reason=f"every request is paused for {paused:.0f} s"
                )
            async with self._in_flight:
                reservation = await self.budget.acquire(weight)
                sent_at = time.monotonic()
                try:
                    response = await self._http.get(path, params=params, headers=headers)
                except httpx.TransportError as exc:  # connect errors, timeouts, dropped connections
                    response = None
                    problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                else:
                    self.budget.observe_round_trip(time.monotonic() - sent_at)
            if response is not None:
                used_weight = wire.used_weight_by_window(response.headers)
                self.budget.observe_used_weight(reservation, used_weight)
                status = response.status_code
                if status == 200:
                    return _Reply(response.text, reservation, used_weight)
                if status in (418, 429):
                    refusals += 1
                    self._obey_refusal(path, status, wire.retry_after_seconds(response.headers), refusals)
                    continue
                if status < 500:
                    raise self._client_error(response, path, symbols)
                problem = f"HTTP {status}"
            failures += 1
            if failures >= self.max_attempts:
                raise ExchangeUnavailableError(
                    self.base_url, path, symbol=symbol, attempts=failures, last_problem=problem
                )
            delay = next(delays)
            log.warning("GET %s%s: %s; retry %d in %.2fs", path, _for(symbol), problem, failures, delay)
            await asyncio.sleep(delay)

    def _obey_refusal(self, path: str, status: int, retry_after: float | None, refusals: int) -> None:
        if retry_after is not None and retry_after > self.max_pause_seconds:
            self.budget.note_rate_limited(status, retry_after)
            raise RateLimitedError(
                path, status=status, retry_after=retry_after, reason=f"Retry-After {retry_after:.0f} s"
            )
        pause = self.budget.note_rate_limited(status, retry_after)
        if refusals > self.max_rate_limit_retries:
            raise RateLimitedError(
                path, status=status, retry_after=retry_after, reason=f"refused {refusals} times in a row"
            )
        log.warning(
            "GET %s: HTTP %d, pausing every request to %s for %.2fs", path, status, self.base_url, pause
        )

    def _client_error(self, response: httpx.Response, path: str, symbols: tuple[str, ...]) -> Exception:
        symbol = ", ".join(symbols) or None
        body = wire.parse_error_body(response.text)
        if body is None:
            excerpt = " ".join(response.text.split())[:200]
            return BinanceApiError(
                None, excerpt or "(empty body)", path, status=response.status_code, symbol=symbol
            )
        if body.code == UNKNOWN_SYMBOL_CODE and symbols:
            source = "exchangeInfo" if path == EXCHANGE_INFO else f"{path} answered {body.code} {body.msg}"
            return UnknownSymbolError(symbols, source=source)
        return BinanceApiError(
            body.code,
            body.msg,
            path,
            status=response.status_code,
            symbol=symbol,
            hint=wire.error_hint(body.code),
        )


def _plan_pages(start_ms: int, end_ms: int, step_ms: int, chunk_minutes: int | None) -> list[_Page]:
    """Split [start, end) into yield chunks, and chunks into pages of at most 1000 klines."""
    if chunk_minutes is not None and chunk_minutes <= 0:
        raise ValueError(f"chunk_minutes must be positive, got {chunk_minutes}")
    page_span = KLINES_PER_REQUEST * step_ms
    chunk_span = chunk_minutes * 60_000 if chunk_minutes else page_span
    pages: list[_Page] = []
    for chunk_start in range(start_ms, end_ms, chunk_span):
        chunk_end = min(chunk_start + chunk_span, end_ms)
        for page_start in range(chunk_start, chunk_end, page_span):
            page_end = min(page_start + page_span, chunk_end)
            pages.append(
                _Page(page_start, page_end, last_of_chunk=page_end == chunk_end, chunk_start_ms=chunk_start)
            )
    return pages


def _ts_us(table: pa.Table, index: int) -> int:
    return int(table.column("ts").cast(pa.int64())[index].as_py())


def _check_agg_page(
    symbol: str, page: _AggTradesPage, from_id: int | None, limit: int, previous: _AggTradesPage | None
) -> None:
    """A page holds at most `limit` trades, starts at `from_id` (if asked by id) and continues `previous`.

    Within a page `wire` already checked that ids step by 1 and the trade-id chain is unbroken.
    """
    table = page.table
    if table.num_rows == 0:
        return

    def bad(reason: str) -> MalformedAggTradeError:
        return MalformedAggTradeError(symbol, wire.split_json_array(page.text)[0][1], reason)

    if table.num_rows > limit:
        raise bad(
            f"the answer holds {table.num_rows} aggregate trades, more than the limit {limit} asked for"
        )
    first_id = int(table.column("trade_id")[0].as_py())
    if from_id is not None and first_id != from_id:
        if first_id > from_id:
            raise bad(
                f"asked for fromId={from_id} but the answer starts at aggregate trade id {first_id}: "
                f"ids {from_id}..{first_id - 1} are missing on the exchange (a hole in its ids)"
            )
        raise bad(f"asked for fromId={from_id} but the answer starts at aggregate trade id {first_id}")
    if previous is not None:
        last_trade_id = int(previous.table.column("last_trade_id")[-1].as_py())
        last_agg_id = int(previous.table.column("trade_id")[-1].as_py())
        first_trade_id = int(table.column("first_trade_id")[0].as_py())
        if first_trade_id != last_trade_id + 1:
            raise bad(
                f"first trade id {first_trade_id} of aggregate trade {first_id} does not follow last trade "
                f"id {last_trade_id} of aggregate trade {last_agg_id} (previous page): the trade-id chain "
                "is broken"
            )


def _for(symbol: str | None) -> str:
    return f" ({symbol})" if symbol else ""
