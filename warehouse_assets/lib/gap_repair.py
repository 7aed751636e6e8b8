"""Find and repair holes in recent data: minutes missing from `klines_1m`, aggregate ids missing from `trades`.

A hole the exchange itself cannot fill (REST returns nothing for it) is recorded in `exchange_gaps` and is
not looked for again, so repair never retries it forever. Repairs only add what is missing: klines by
replacing exactly the missing minutes, trades by inserting the missing ids (stream rows stay).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib import klines_store, trades_store
from warehouse_assets.lib.klines_store import consecutive_runs, minute_ranges
from warehouse_assets.lib.records import MINUTE_MS
from warehouse_assets.lib.trades_backfill import source_independent_ts
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.lib.warehouse.sql import load_sql

log = logging.getLogger(__name__)
EXCHANGE = "binance"
PAGE = 1000


class RestSource(Protocol):
    async def kline_table(
        self, symbol: str, start_ms: int, end_ms: int, interval: str = "1m"
    ) -> pa.Table: ...

    async def agg_trades_from(self, symbol: str, from_id: int, limit: int = 1) -> pa.Table: ...


@dataclass(frozen=True)
class Gaps:
    symbol: str
    missing_minutes: list[tuple[int, int]]  # inclusive (first, last) open times, ms
    trade_gaps: list[tuple[int, int]]  # (id before, id after): the ids strictly between are missing

    @property
    def minutes(self) -> int:
        return sum((last - first) // MINUTE_MS + 1 for first, last in self.missing_minutes)

    @property
    def trade_ids(self) -> int:
        return sum(after - before - 1 for before, after in self.trade_gaps)


@dataclass
class Repair:
    symbol: str
    minutes_filled: int = 0
    minutes_exchange_gap: int = 0
    trades_filled: int = 0
    trade_ids_exchange_gap: int = 0
    exchange_gaps: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, first, last)


def find_gaps(
    client: Client, database: str, *, symbol: str, start_ms: int, end_ms: int, max_trade_gaps: int = 1000
) -> Gaps:
    """Missing minutes (whole minutes of [start_ms, end_ms)) and aggregate-id holes, minus known exchange gaps."""
    start_ms -= start_ms % MINUTE_MS
    end_ms -= end_ms % MINUTE_MS
    params = {"exchange": EXCHANGE, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}
    present = {
        int(r[0])
        for r in client.query(
            load_sql("klines/open_times.sql").render(database=database), parameters=params
        ).result_rows
    }
    known = _known(client, database, symbol, "klines")
    missing = [
        t
        for t in range(start_ms, end_ms, MINUTE_MS)
        if t not in present and not any(a <= t <= b for a, b in known)
    ]
    holes = client.query(
        load_sql("trades/id_gaps.sql").render(database=database),
        parameters={**params, "limit": max_trade_gaps},
    ).result_rows
    known_ids = _known(client, database, symbol, "agg_trades")
    trade_gaps = [
        (int(before), int(after))
        for before, after in holes
        if not any(a <= int(before) + 1 and int(after) - 1 <= b for a, b in known_ids)
    ]
    return Gaps(symbol, minute_ranges(missing), trade_gaps)


def _known(client: Client, database: str, symbol: str, kind: str) -> list[tuple[int, int]]:
    rows = client.query(
        load_sql("quality/known_exchange_gaps.sql").render(database=database),
        parameters={"exchange": EXCHANGE, "symbol": symbol, "kind": kind},
    ).result_rows
    return [(int(a), int(b)) for a, b in rows]


async def repair(warehouse: Warehouse, rest: RestSource, gaps: Gaps) -> Repair:
    """Fetch exactly the missing ranges from REST and write them; record what the exchange does not have."""
    result = Repair(gaps.symbol)
    for first, last in gaps.missing_minutes:
        end = last + MINUTE_MS
        klines = await rest.kline_table(gaps.symbol, first, end)
        got = set(klines.column("open_time").cast(pa.int64()).to_pylist()) if klines.num_rows else set()
        with warehouse.session() as client:
            if klines.num_rows:
                klines_store.replace_window(
                    client, warehouse.database, exchange=EXCHANGE, symbol=gaps.symbol,
                    start_ms=first, end_ms=end, klines=klines, source="rest",
                )  # fmt: skip
            result.minutes_filled += len(got)
            for a, b in minute_ranges([t for t in range(first, end, MINUTE_MS) if t not in got]):
                _record_gap(client, warehouse.database, result, gaps.symbol, "klines", a, b)
                result.minutes_exchange_gap += (b - a) // MINUTE_MS + 1
    for before, after in gaps.trade_gaps:
        fetched = await _trades_between(rest, gaps.symbol, before, after)
        got_ids = set(fetched.column("trade_id").to_pylist()) if fetched.num_rows else set()
        with warehouse.session() as client:
            if fetched.num_rows:
                result.trades_filled += trades_store.insert_missing(
                    client, warehouse.database, table=fetched, source="rest"
                )
                ts = fetched.column("ts").cast(pa.int64())
                first_ms = int(ts[0].as_py()) // 1000 // MINUTE_MS * MINUTE_MS
                last_ms = int(ts[-1].as_py()) // 1000 // MINUTE_MS * MINUTE_MS + MINUTE_MS
                trades_store.rebuild_candles(
                    client,
                    warehouse.database,
                    exchange=EXCHANGE,
                    symbol=gaps.symbol,
                    start_ms=first_ms,
                    end_ms=last_ms,
                )
            missing = [i for i in range(before + 1, after) if i not in got_ids]
            for a, b in consecutive_runs(missing, 1):
                _record_gap(client, warehouse.database, result, gaps.symbol, "agg_trades", a, b)
                result.trade_ids_exchange_gap += b - a + 1
    return result


async def _trades_between(rest: RestSource, symbol: str, before: int, after: int) -> pa.Table:
    """Aggregate trades with ids strictly between `before` and `after`, by fromId pages (each id asked once)."""
    parts: list[pa.Table] = []
    next_id = before + 1
    while next_id < after:
        page = await rest.agg_trades_from(symbol, next_id, limit=min(PAGE, after - next_id))
        if page.num_rows == 0:
            break
        ids = page.column("trade_id").to_pylist()
        parts.append(page)
        next_id = int(ids[-1]) + 1
    if not parts:
        return trades_store.AGG_TRADE_SCHEMA.empty_table()
    table = pa.concat_tables(parts)
    table = table.filter(pc.less(table.column("trade_id"), after))
    return source_independent_ts(table)


def _record_gap(
    client: Client, database: str, result: Repair, symbol: str, kind: str, first: int, last: int
) -> None:
    client.insert(
        f"{database}.exchange_gaps",
        [[EXCHANGE, symbol, kind, first, last]],
        column_names=["exchange", "symbol", "kind", "first", "last"],
    )
    result.exchange_gaps.append((kind, first, last))
    log.warning(
        "%s %s %d..%d: the exchange has no data for it (recorded, not retried)", symbol, kind, first, last
    )
