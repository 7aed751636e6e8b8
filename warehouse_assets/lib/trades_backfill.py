"""Backfill Binance aggregate trades for one symbol over UTC days, then the 1m candles built from them.

Each day: REST says which aggregate ids the day holds (two requests of weight 4: the oldest trade of the
day and the oldest after it); the sha256-verified data.binance.vision file is loaded if published (parsed
by ClickHouse, checked against those ids, so a cut file is refused), REST `/api/v3/aggTrades` otherwise.
The next day downloads while the current one is written; the warehouse is opened only to write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib import trades_store
from warehouse_assets.lib.binance.archive import ArchiveClient
from warehouse_assets.lib.binance.archive_format import read_agg_trades
from warehouse_assets.lib.dead_letters import DeadLetter, record_dead_letters
from warehouse_assets.lib.errors import (
    ArchiveChecksumError,
    ArchiveFormatError,
    ArchiveNotPublishedError,
    MalformedAggTradeError,
    MalformedResponseError,
)
from warehouse_assets.lib.klines_backfill import day_start_ms
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA, DAY_MS
from warehouse_assets.lib.warehouse import Warehouse

log = logging.getLogger(__name__)
EXCHANGE = "binance"
# data.binance.vision spot files carry µs from 2025-01-01 on and ms before. REST (asked for µs) may know
# an earlier trade's µs, but the archive never will: before that day every source keeps ms (µs floored),
# so a trade's timestamp never depends on where it came from.
SPOT_MICROS_FROM_US = 1_735_689_600_000_000


def source_independent_ts(table: pa.Table) -> pa.Table:
    """Trades (`AGG_TRADE_SCHEMA`) with times before 2025-01-01 floored to the millisecond, as the archive has them."""
    ts = table.column("ts").cast(pa.int64())
    millis = pc.multiply(pc.divide(ts, 1000), 1000)  # integer division of positive times: floor
    floored = pc.if_else(pc.less(ts, SPOT_MICROS_FROM_US), millis, ts)
    index = table.schema.get_field_index("ts")
    return table.set_column(index, "ts", floored.cast(AGG_TRADE_SCHEMA.field("ts").type))


class AggTradeSource(Protocol):
    """What the backfill needs of the REST client (`BinanceRestClient`)."""

    def iter_agg_trades(self, symbol: str, start_us: int, end_us: int) -> AsyncIterator[pa.Table]: ...

    async def oldest_agg_trade(self, symbol: str, start_us: int, end_us: int | None = None) -> pa.Table: ...


@dataclass(frozen=True)
class DayLoad:
    """What one (symbol, day) load wrote and read back."""

    symbol: str
    day: date
    source: str  # archive | rest
    expected_ids: tuple[int, int] | None  # the day's first and last aggregate id per REST; None: no trades
    write: trades_store.TradesWrite
    candles: trades_store.CandlesBuild
    facts: trades_store.TradeDayFacts
    reconciliation: trades_store.Reconciliation


async def day_id_range(rest: AggTradeSource, symbol: str, day: date) -> tuple[int, int] | None:
    """The first and last aggregate id of a UTC day according to REST.

    None when the day had no trades, or when nothing traded after it (its end is then unknown).
    """
    start_ms = day_start_ms(day)
    end_ms = start_ms + DAY_MS
    first = await rest.oldest_agg_trade(symbol, start_ms * 1000, end_ms * 1000)
    if first.num_rows == 0:
        return None
    after = await rest.oldest_agg_trade(symbol, end_ms * 1000)
    if after.num_rows == 0:
        return None  # nothing traded since (delisted): the end is unknown, so REST fetches the day whole
    return int(first.column("trade_id")[0].as_py()), int(after.column("trade_id")[0].as_py()) - 1


async def backfill_agg_trades(
    warehouse: Warehouse,
    rest: AggTradeSource,
    archive: ArchiveClient | None,
    symbol: str,
    days: Sequence[date],
    *,
    on_day: Callable[[DayLoad], None] | None = None,
    lookahead: int = 2,
) -> list[DayLoad]:
    """Load every given day of `symbol` (archive first, REST otherwise) and rebuild its candles.

    A file or response that fails a check stops the backfill: it is kept in dead letters with its reason,
    nothing of its day is written, and the error (naming the file or the trade) is raised. Days before it
    stay written; each is complete and correct on its own.
    """
    ordered = sorted(set(days))
    await asyncio.to_thread(_drop_stale_stages, warehouse)
    with tempfile.TemporaryDirectory(prefix="binance-aggtrades-") as scratch:

        async def prepare(day: date) -> tuple[tuple[int, int] | None, Path | None]:
            if archive is None:
                return await day_id_range(rest, symbol, day), None
            # The day's ids (REST) and its file (archive) come from different hosts: fetch both at once.
            ids, download = await asyncio.gather(
                day_id_range(rest, symbol, day),
                _download(archive, symbol, day, Path(scratch) / day.isoformat()),
                return_exceptions=True,
            )
            if isinstance(download, ArchiveChecksumError):
                await asyncio.to_thread(
                    _dead_letter, warehouse, symbol, "archive", str(download), download.file
                )
            if isinstance(ids, BaseException):
                raise ids
            if isinstance(download, BaseException):
                raise download
            # No trades (or no known end) per REST: REST serves the day whole, whatever the file says.
            return ids, download if ids is not None else None

        # At most `lookahead` days are prepared ahead of the one being written: downloads never pile up on disk.
        upcoming = iter(ordered)
        pending: deque[tuple[date, asyncio.Task[tuple[tuple[int, int] | None, Path | None]]]] = deque()

        def schedule() -> None:
            while len(pending) < lookahead and (day := next(upcoming, None)) is not None:
                pending.append((day, asyncio.create_task(prepare(day))))

        results: list[DayLoad] = []
        try:
            schedule()
            while pending:
                day, task = pending.popleft()
                expected, path = await task
                schedule()
                if path is not None:
                    load = await asyncio.to_thread(_load_archive, warehouse, symbol, day, path, expected)
                    path.unlink(missing_ok=True)
                else:
                    load = await _load_rest(warehouse, rest, symbol, day, expected)
                results.append(load)
                if on_day is not None:
                    on_day(load)
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
    return results


async def _download(archive: ArchiveClient, symbol: str, day: date, directory: Path) -> Path | None:
    """The day's verified file, or None when it is not published (yet): REST serves the day then."""
    try:
        return await archive.fetch_verified(archive.daily_agg_trades_url(symbol, day), directory)
    except ArchiveNotPublishedError:
        return None


def _load_archive(
    warehouse: Warehouse, symbol: str, day: date, path: Path, expected: tuple[int, int] | None
) -> DayLoad:
    start_ms = day_start_ms(day)
    try:
        with warehouse.session() as client:
            write = trades_store.replace_window_from_csv(
                client,
                warehouse.database,
                embedded=warehouse.target.embedded,
                path=path,
                exchange=EXCHANGE,
                symbol=symbol,
                start_ms=start_ms,
                end_ms=start_ms + DAY_MS,
                expected_ids=expected,
            )
            return _finish(client, warehouse, symbol, day, "archive", expected, write)
    except trades_store.RejectedTradesError as exc:
        error = _diagnose(path, symbol, exc)
        _dead_letter(warehouse, symbol, "archive", str(error), path.name)
        raise error from None


def _diagnose(path: Path, symbol: str, rejected: trades_store.RejectedTradesError) -> ArchiveFormatError:
    """The most precise error for a refused file: the row-by-row reader names the row when it can."""
    try:
        read_agg_trades(path, symbol=symbol)
    except ArchiveFormatError as exc:
        return exc
    return ArchiveFormatError(path.name, str(rejected))


async def _load_rest(
    warehouse: Warehouse, rest: AggTradeSource, symbol: str, day: date, expected: tuple[int, int] | None
) -> DayLoad:
    start_ms = day_start_ms(day)
    try:
        parts = [t async for t in rest.iter_agg_trades(symbol, start_ms * 1000, (start_ms + DAY_MS) * 1000)]
    except MalformedAggTradeError as exc:
        await asyncio.to_thread(_dead_letter, warehouse, symbol, "rest", exc.reason, exc.raw)
        raise
    table = source_independent_ts(pa.concat_tables(parts)) if parts else None

    def write() -> DayLoad:
        with warehouse.session() as client:
            result = trades_store.replace_window_from_table(
                client,
                warehouse.database,
                table=table if table is not None else AGG_TRADE_SCHEMA.empty_table(),
                exchange=EXCHANGE,
                symbol=symbol,
                start_ms=start_ms,
                end_ms=start_ms + DAY_MS,
                expected_ids=expected,
            )
            return _finish(client, warehouse, symbol, day, "rest", expected, result)

    try:
        return await asyncio.to_thread(write)
    except trades_store.RejectedTradesError as exc:
        error = MalformedResponseError(
            "/api/v3/aggTrades", f"the trades REST served for {symbol} {day.isoformat()} were refused: {exc}"
        )
        await asyncio.to_thread(_dead_letter, warehouse, symbol, "rest", str(error), "")
        raise error from None


def _finish(
    client: Client,
    warehouse: Warehouse,
    symbol: str,
    day: date,
    source: str,
    expected: tuple[int, int] | None,
    write: trades_store.TradesWrite,
) -> DayLoad:
    """After a day's trades are written: rebuild its candles, read its facts back, reconcile with klines."""
    start_ms = day_start_ms(day)
    db, end_ms = warehouse.database, start_ms + DAY_MS
    candles = trades_store.rebuild_candles(
        client, db, exchange=EXCHANGE, symbol=symbol, start_ms=start_ms, end_ms=end_ms
    )
    (facts,) = trades_store.day_facts(
        client, db, exchange=EXCHANGE, symbol=symbol, start_ms=start_ms, end_ms=end_ms
    )
    reconciliation = trades_store.reconcile_with_klines(
        client, db, exchange=EXCHANGE, symbol=symbol, start_ms=start_ms, end_ms=end_ms
    )
    log.debug("%s %s: %d trades from %s, %d candles", symbol, day, write.inserted, source, candles.built)
    return DayLoad(symbol, day, source, expected, write, candles, facts, reconciliation)


def rebuild_days(warehouse: Warehouse, symbol: str, days: Sequence[date]) -> list[DayLoad]:
    """Rebuild candles (and read facts back) for days whose trades are already in the warehouse."""
    loads = []
    with warehouse.session() as client:
        for day in sorted(set(days)):
            write = trades_store.TradesWrite(0, 0, 0, None, None)
            loads.append(_finish(client, warehouse, symbol, day, "warehouse", None, write))
    return loads


def _drop_stale_stages(warehouse: Warehouse) -> None:
    with warehouse.session() as client:
        for name in trades_store.drop_stale_stages(client, warehouse.database):
            log.warning("dropped %s, the stage of a load that crashed (it never reached trades)", name)


def _dead_letter(warehouse: Warehouse, symbol: str, source: str, reason: str, payload: object) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    letter = DeadLetter(
        exchange=EXCHANGE, source=source, kind="agg_trade", symbol=symbol, reason=reason, payload=text
    )
    with warehouse.session() as client:
        record_dead_letters(client, warehouse.database, [letter])
