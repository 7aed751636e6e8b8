"""Reads and writes of `klines_1m`: an idempotent replace of a (symbol, window) and per-day quality facts."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib.records import DAY_MS, MINUTE_MS, TIME_MS, Kline, klines_to_table
from warehouse_assets.lib.warehouse.sql import delete_counted, load_sql

TABLE = "klines_1m"
_version_lock = threading.Lock()
_last_version = 0


def next_version_ms() -> int:
    """A write version (ingested_at, ms): wall clock, strictly increasing within the process."""
    global _last_version
    with _version_lock:
        _last_version = max(int(time.time() * 1000), _last_version + 1)
        return _last_version


def with_write_columns(klines: pa.Table, source: str, version_ms: int) -> pa.Table:
    """A KLINE_SCHEMA batch plus the columns a write adds: which path wrote it, and the write version."""
    n = klines.num_rows
    return klines.append_column("source", pa.array([source] * n, pa.string())).append_column(
        "ingested_at", pa.array([version_ms] * n, pa.int64()).cast(TIME_MS)
    )


@dataclass(frozen=True)
class ReplaceResult:
    inserted: int
    replaced_older: int  # rows of earlier writes that this write removed
    version_ms: int


def replace_window(
    client: Client,
    database: str,
    *,
    exchange: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    klines: pa.Table | Sequence[Kline],
    source: str,
) -> ReplaceResult:
    """Make [start_ms, end_ms) of (exchange, symbol) hold exactly `klines`.

    Insert the new version first, then delete older versions of the window: readers never see the
    window empty, and after the call a plain SELECT sees exactly one row per minute. Re-running is
    idempotent; a minute the exchange no longer serves disappears too.
    """
    table = klines if isinstance(klines, pa.Table) else klines_to_table(klines)
    if table.num_rows:
        open_ms = table.column("open_time").cast(pa.int64())
        inside = pc.and_(
            pc.and_(pc.equal(table.column("exchange"), exchange), pc.equal(table.column("symbol"), symbol)),
            pc.and_(pc.greater_equal(open_ms, start_ms), pc.less(open_ms, end_ms)),
        )
        if not pc.all(inside).as_py():
            raise ValueError(
                f"a kline is outside the window being replaced ({exchange}:{symbol} [{start_ms}, {end_ms})); "
                "nothing was written"
            )
    version_ms = next_version_ms()
    if table.num_rows:
        client.insert_arrow(f"{database}.{TABLE}", with_write_columns(table, source, version_ms))
    params = {
        "exchange": exchange,
        "symbol": symbol,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "version_ms": version_ms,
    }
    older = delete_counted(
        client, "klines/count_older_versions.sql", "klines/delete_older_versions.sql", database, params
    )
    return ReplaceResult(inserted=table.num_rows, replaced_older=older, version_ms=version_ms)


@dataclass(frozen=True)
class DayQuality:
    day: str  # YYYY-MM-DD (UTC)
    row_count: int
    distinct_minutes: int
    first_open_ms: int | None
    last_open_ms: int | None
    ohlc_violations: int
    negative_volumes: int
    misaligned_rows: int
    missing_minutes: tuple[int, ...]  # open times (ms) with no row

    @property
    def duplicate_rows(self) -> int:
        return self.row_count - self.distinct_minutes

    @property
    def expected_minutes(self) -> int:
        return DAY_MS // MINUTE_MS


def window_quality(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> list[DayQuality]:
    """Quality facts of every UTC day in [start_ms, end_ms) (day-aligned) of one symbol, read back from the warehouse."""
    if start_ms % DAY_MS or end_ms % DAY_MS or end_ms <= start_ms:
        raise ValueError(f"window [{start_ms}, {end_ms}) must be whole UTC days")
    params = {"exchange": exchange, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}
    by_day = {
        row[0]: row
        for row in client.query(
            load_sql("klines/day_quality.sql").render(database=database), parameters=params
        ).result_rows
    }
    present: set[int] | None = None
    out: list[DayQuality] = []
    per_day = DAY_MS // MINUTE_MS
    for day_ms in range(start_ms, end_ms, DAY_MS):
        day = datetime.fromtimestamp(day_ms / 1000, tz=UTC).date().isoformat()
        minutes = range(day_ms, day_ms + DAY_MS, MINUTE_MS)
        row = by_day.get(day)
        if row is None:
            out.append(DayQuality(day, 0, 0, None, None, 0, 0, 0, tuple(minutes)))
            continue
        (_, row_count, distinct, first_ms, last_ms, ohlc_bad, negative, misaligned) = row
        missing: tuple[int, ...] = ()
        if distinct < per_day:
            if present is None:  # one query for the whole window, only when some day is incomplete
                sql = load_sql("klines/open_times.sql").render(database=database)
                present = {int(r[0]) for r in client.query(sql, parameters=params).result_rows}
            missing = tuple(t for t in minutes if t not in present)
        out.append(
            DayQuality(
                day=day,
                row_count=int(row_count),
                distinct_minutes=int(distinct),
                first_open_ms=int(first_ms),
                last_open_ms=int(last_ms),
                ohlc_violations=int(ohlc_bad),
                negative_volumes=int(negative),
                misaligned_rows=int(misaligned),
                missing_minutes=missing,
            )
        )
    return out


def consecutive_runs(values: Sequence[int], step: int) -> list[tuple[int, int]]:
    """Values `step` apart folded into inclusive (first, last) runs (minutes, aggregate ids, ...)."""
    ranges: list[tuple[int, int]] = []
    for value in sorted(values):
        if ranges and value == ranges[-1][1] + step:
            ranges[-1] = (ranges[-1][0], value)
        else:
            ranges.append((value, value))
    return ranges


def minute_ranges(open_times: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive minutes folded into inclusive (first, last) ranges, for readable reports."""
    return consecutive_runs(open_times, MINUTE_MS)


def table_columns(client: Client, database: str, table: str = TABLE) -> list[tuple[str, str, str]]:
    result = client.query(
        load_sql("klines/table_columns.sql").text, parameters={"database": database, "table": table}
    )
    return [(str(n), str(t), str(c)) for n, t, c in result.result_rows]
