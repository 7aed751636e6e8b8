"""Backfill 1m klines for one symbol over a set of UTC days: fetch from REST, replace in the warehouse.

Days are grouped into contiguous batches; the next batch downloads while the previous one is written,
and the warehouse is opened only to write (never while waiting on the network).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from warehouse_assets.lib import klines_store
from warehouse_assets.lib.dead_letters import DeadLetter, record_dead_letters
from warehouse_assets.lib.errors import MalformedKlineError
from warehouse_assets.lib.records import DAY_MS, Kline
from warehouse_assets.lib.warehouse import Warehouse

log = logging.getLogger(__name__)
EXCHANGE = "binance"


class KlineSource(Protocol):
    async def klines(self, symbol: str, start_ms: int, end_ms: int, interval: str = "1m") -> list[Kline]: ...


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def contiguous_batches(days: Iterable[date], max_days: int) -> list[tuple[date, date]]:
    """Sorted, de-duplicated days cut into runs of consecutive days, each at most `max_days` long.

    Returned as (first_day, last_day) inclusive.
    """
    ordered = sorted(set(days))
    batches: list[tuple[date, date]] = []
    for day in ordered:
        if batches:
            first, last = batches[-1]
            if day == last + timedelta(days=1) and (day - first).days < max_days:
                batches[-1] = (first, day)
                continue
        batches.append((day, day))
    return batches


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
    batch_days: int = 8,
    source_name: str = "rest",
    on_batch: Callable[[BatchResult], None] | None = None,
) -> list[BatchResult]:
    """Fetch and replace every given day of `symbol`; return what was written, batch by batch.

    A malformed row stops the backfill: it is written to dead letters with its reason, nothing of its
    batch is inserted, and MalformedKlineError is raised (batches before it stay written; each is
    complete and correct on its own).
    """
    batches = contiguous_batches(days, batch_days)
    results: list[BatchResult] = []
    queue: asyncio.Queue[tuple[date, date, list[Kline]] | None] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            for first, last in batches:
                start_ms, end_ms = day_start_ms(first), day_start_ms(last) + DAY_MS
                klines = await source.klines(symbol, start_ms, end_ms, interval="1m")
                await queue.put((first, last, klines))
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            first, last, klines = item
            result = await asyncio.to_thread(
                _write_batch, warehouse, symbol, first, last, klines, source_name
            )
            results.append(result)
            if on_batch is not None:
                on_batch(result)
        await producer  # re-raises a fetch error (after the batches before it were written)
    except MalformedKlineError as exc:
        await asyncio.to_thread(_record_malformed, warehouse, exc, source_name)
        raise
    finally:
        if not producer.done():
            producer.cancel()
    return results


def _write_batch(
    warehouse: Warehouse, symbol: str, first: date, last: date, klines: list[Kline], source_name: str
) -> BatchResult:
    start_ms, end_ms = day_start_ms(first), day_start_ms(last) + DAY_MS
    fetched_by_day: dict[int, int] = {}
    for k in klines:
        day_ms = k.open_time - k.open_time % DAY_MS
        fetched_by_day[day_ms] = fetched_by_day.get(day_ms, 0) + 1
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
    with warehouse.session() as client:
        record_dead_letters(client, warehouse.database, [letter])
