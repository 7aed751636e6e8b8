"""Backfill 1m klines for one symbol over a set of UTC days: fetch, then replace in the warehouse.

Whole published days come from the verified data.binance.vision archive when one is given; REST serves
the rest.

Days are grouped into contiguous batches; the next batch downloads while the previous one is written,
and the warehouse is opened only to write (never while waiting on the network).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa

from warehouse_assets.lib import klines_store, schemas
from warehouse_assets.lib.dead_letters import DeadLetter, record_dead_letters
from warehouse_assets.lib.errors import (
    ArchiveChecksumError,
    ArchiveFormatError,
    ArchiveNotPublishedError,
    MalformedKlineError,
)
from warehouse_assets.lib.records import DAY_MS, MINUTE_MS
from warehouse_assets.lib.warehouse import Warehouse

log = logging.getLogger(__name__)
EXCHANGE = "binance"


class KlineSource(Protocol):
    """Where klines come from: the REST client, or later an archive reader."""

    def iter_kline_windows(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        interval: str = "1m",
        chunk_minutes: int | None = None,
    ) -> AsyncIterator[tuple[int, int, pa.Table]]: ...


class KlineArchive(Protocol):
    """Whole published days (data.binance.vision); raises ArchiveNotPublishedError for a day not there."""

    async def daily_klines(self, symbol: str, day: date, interval: str = "1m") -> pa.Table: ...


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def contiguous_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted, de-duplicated days folded into runs of consecutive days, as (first_day, last_day) inclusive."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


@dataclass(frozen=True)
class DayResult:
    symbol: str
    fetched: int  # klines the exchange returned for the day
    quality: klines_store.DayQuality


@dataclass(frozen=True)
class BatchResult:
    symbol: str
    first_day: date
    last_day: date
    inserted: int
    replaced_older: int
    days: list[DayResult]


async def backfill_symbol(
    warehouse: Warehouse,
    source: KlineSource,
    symbol: str,
    days: Sequence[date],
    *,
    batch_days: int = 25,
    source_name: str = "rest",
    on_batch: Callable[[BatchResult], None] | None = None,
    archive: KlineArchive | None = None,
    archive_concurrency: int = 4,
) -> list[BatchResult]:
    """Fetch and replace every given day of `symbol`; return what was written, batch by batch.

    A malformed row stops the backfill: it is written to dead letters with its reason, nothing of its
    batch is inserted, and MalformedKlineError is raised (batches before it stay written; each is
    complete and correct on its own).
    """
    if archive is not None:
        return await _backfill_archive_first(
            warehouse, source, archive, symbol, days, batch_days, archive_concurrency, on_batch
        )
    # 25 days = 36 000 minutes = exactly 36 requests of 1000 klines: no partial page at a batch edge.
    chunk_minutes = batch_days * DAY_MS // MINUTE_MS
    results: list[BatchResult] = []
    queue: asyncio.Queue[tuple[int, int, pa.Table] | None] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            for first, last in contiguous_ranges(days):
                windows = source.iter_kline_windows(
                    symbol,
                    day_start_ms(first),
                    day_start_ms(last) + DAY_MS,
                    interval="1m",
                    chunk_minutes=chunk_minutes,
                )
                async for window in windows:
                    await queue.put(window)
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            start_ms, end_ms, klines = item
            # The write and the caller's report (Dagster metadata and logs hit its event store) run in a
            # worker thread, so the event loop keeps downloading the next batch meanwhile.
            result = await asyncio.to_thread(
                _write_and_report, warehouse, symbol, start_ms, end_ms, klines, source_name, on_batch
            )
            results.append(result)
        await producer  # re-raises a fetch error (after the batches before it were written)
    except MalformedKlineError as exc:
        await asyncio.to_thread(_record_malformed, warehouse, exc, source_name)
        raise
    finally:
        if not producer.done():
            producer.cancel()
    return results


async def _backfill_archive_first(
    warehouse: Warehouse,
    source: KlineSource,
    archive: KlineArchive,
    symbol: str,
    days: Sequence[date],
    batch_days: int,
    concurrency: int,
    on_batch: Callable[[BatchResult], None] | None,
) -> list[BatchResult]:
    """Whole days from verified daily archives where published, REST for the others (`source` says which).

    Days go in groups of `batch_days`; a group's archives are all fetched and verified before anything of
    it is written, so a corrupt or truncated file (an error naming the file) inserts nothing of its day.
    """
    gate = asyncio.Semaphore(concurrency)

    async def from_archive(day: date) -> pa.Table | None:
        async with gate:
            try:
                return await archive.daily_klines(symbol, day)
            except ArchiveNotPublishedError:
                return None  # not published (yet): REST serves the day

    results: list[BatchResult] = []
    ordered = sorted(set(days))
    for i in range(0, len(ordered), batch_days):
        group = ordered[i : i + batch_days]
        try:
            tables = await asyncio.gather(*(from_archive(day) for day in group))
        except (ArchiveChecksumError, ArchiveFormatError) as exc:
            letter = DeadLetter(
                exchange=EXCHANGE,
                source="archive",
                kind="kline",
                symbol=symbol,
                reason=str(exc),
                payload=exc.file,
            )
            await asyncio.to_thread(_record, warehouse, letter)
            raise
        published = {day: t for day, t in zip(group, tables, strict=True) if t is not None}
        for first, last in contiguous_ranges(published):
            klines = pa.concat_tables(
                [published[first + timedelta(days=n)] for n in range((last - first).days + 1)]
            )
            try:
                results.append(
                    await asyncio.to_thread(
                        _write_and_report,
                        warehouse,
                        symbol,
                        day_start_ms(first),
                        day_start_ms(last) + DAY_MS,
                        klines,
                        "archive",
                        on_batch,
                    )
                )
            except MalformedKlineError as exc:
                await asyncio.to_thread(_record_malformed, warehouse, exc, "archive")
                raise
        rest_days = [day for day in group if day not in published]
        if rest_days:
            results.extend(await backfill_symbol(warehouse, source, symbol, rest_days, on_batch=on_batch))
    return results


def _write_and_report(
    warehouse: Warehouse,
    symbol: str,
    start_ms: int,
    end_ms: int,
    klines: pa.Table,
    source_name: str,
    on_batch: Callable[[BatchResult], None] | None,
) -> BatchResult:
    result = _write_batch(warehouse, symbol, start_ms, end_ms, klines, source_name)
    if on_batch is not None:
        on_batch(result)
    return result


def _write_batch(
    warehouse: Warehouse, symbol: str, start_ms: int, end_ms: int, klines: pa.Table, source_name: str
) -> BatchResult:
    first, last = _utc_day(start_ms), _utc_day(end_ms - DAY_MS)
    report = schemas.validate(schemas.Klines1m, klines)  # ~20 ms per 36k rows: the parsers' checks, again
    if not report.passed:
        raise MalformedKlineError(
            symbol,
            report.markdown(),
            f"{report.failing_rows} klines of {first}..{last} fail the {report.model} schema",
            path="/api/v3/klines" if source_name == "rest" else "data.binance.vision",
        )
    open_ms = klines.column("open_time").cast(pa.int64()).to_numpy()
    days_ms, counts = np.unique(open_ms - open_ms % DAY_MS, return_counts=True)
    fetched_by_day = dict(zip(days_ms.tolist(), counts.tolist(), strict=True))
    with warehouse.session() as client:
        replaced = klines_store.replace_window(
            client,
            warehouse.database,
            exchange=EXCHANGE,
            symbol=symbol,
            start_ms=start_ms,
            end_ms=end_ms,
            klines=klines,
            source=source_name,
        )
        qualities = klines_store.window_quality(
            client, warehouse.database, exchange=EXCHANGE, symbol=symbol, start_ms=start_ms, end_ms=end_ms
        )
    days = [
        DayResult(
            symbol=symbol, fetched=fetched_by_day.get(day_start_ms(date.fromisoformat(q.day)), 0), quality=q
        )
        for q in qualities
    ]
    log.debug("%s %s..%s: %d klines written", symbol, first, last, replaced.inserted)
    return BatchResult(symbol, first, last, replaced.inserted, replaced.replaced_older, days)


def _utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def _record_malformed(warehouse: Warehouse, exc: MalformedKlineError, source_name: str) -> None:
    payload = exc.raw if isinstance(exc.raw, str) else json.dumps(exc.raw)
    letter = DeadLetter(
        exchange=EXCHANGE,
        source=source_name,
        kind="kline",
        symbol=exc.symbol,
        reason=exc.reason,
        payload=payload,
    )
    _record(warehouse, letter)


def _record(warehouse: Warehouse, letter: DeadLetter) -> None:
    with warehouse.session() as client:
        record_dead_letters(client, warehouse.database, [letter])
