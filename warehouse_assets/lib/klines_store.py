"""Reads and writes of `klines_1m`: an idempotent replace of a (symbol, window) and per-day quality facts."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib.records import DAY_MS, MINUTE_MS, Kline
from warehouse_assets.lib.warehouse.sql import load_sql

TABLE = "klines_1m"
COLUMNS = [
    "exchange",
    "symbol",
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "source",
    "ingested_at",
]
_DECIMAL = pa.decimal128(38, 18)
_TIME = pa.timestamp("ms", tz="UTC")
_DECIMAL_FIELDS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
]

_version_lock = threading.Lock()
_last_version = 0


def next_version_ms() -> int:
    """A write version (ingested_at, ms): wall clock, strictly increasing within the process."""
    global _last_version
    with _version_lock:
        _last_version = max(int(time.time() * 1000), _last_version + 1)
        return _last_version


def to_arrow(klines: Sequence[Kline], source: str, version_ms: int) -> pa.Table:
    """Klines as an Arrow table. Decimals convert exactly (pyarrow refuses to drop digits)."""
    n = len(klines)
    columns: dict[str, pa.Array] = {
        "exchange": pa.array([k.exchange for k in klines], pa.string()),
        "symbol": pa.array([k.symbol for k in klines], pa.string()),
        "open_time": pa.array([k.open_time for k in klines], pa.int64()).cast(_TIME),
        "close_time": pa.array([k.close_time for k in klines], pa.int64()).cast(_TIME),
        "trades": pa.array([k.trades for k in klines], pa.uint64()),
        "source": pa.array(itertools.repeat(source, n), pa.string()),
        "ingested_at": pa.array(itertools.repeat(version_ms, n), pa.int64()).cast(_TIME),
    }
    for name in _DECIMAL_FIELDS:
        columns[name] = pa.array([getattr(k, name) for k in klines], _DECIMAL)
    return pa.table({name: columns[name] for name in COLUMNS})


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
    klines: Sequence[Kline],
    source: str,
) -> ReplaceResult:
    """Make [start_ms, end_ms) of (exchange, symbol) hold exactly `klines`.

    Insert the new version first, then delete older versions of the window: readers never see the
    window empty, and after the call a plain SELECT sees exactly one row per minute. Re-running is
    idempotent; a minute the exchange no longer serves disappears too.
    """
    for k in klines:
        if k.exchange != exchange or k.symbol != symbol or not (start_ms <= k.open_time < end_ms):
            raise ValueError(
                f"kline {k.exchange}:{k.symbol}@{k.open_time} is outside the window being replaced "
                f"({exchange}:{symbol} [{start_ms}, {end_ms}))"
            )
    version_ms = next_version_ms()
    if klines:
        client.insert_arrow(f"{database}.{TABLE}", to_arrow(klines, source, version_ms))
    params = {
        "exchange": exchange,
        "symbol": symbol,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "version_ms": version_ms,
    }
    older = int(
        client.query(
            load_sql("klines/count_older_versions.sql").render(database=database), parameters=params
        ).result_rows[0][0]
    )
    if older:
        client.command(
            load_sql("klines/delete_older_versions.sql").render(database=database), parameters=params
        )
    return ReplaceResult(inserted=len(klines), replaced_older=older, version_ms=version_ms)


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


def minute_ranges(open_times: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive minutes folded into inclusive (first, last) ranges, for readable reports."""
    ranges: list[tuple[int, int]] = []
    for t in sorted(open_times):
        if ranges and t == ranges[-1][1] + MINUTE_MS:
            ranges[-1] = (ranges[-1][0], t)
        else:
            ranges.append((t, t))
    return ranges


def table_columns(client: Client, database: str, table: str = TABLE) -> list[tuple[str, str, str]]:
    result = client.query(
        load_sql("klines/table_columns.sql").text, parameters={"database": database, "table": table}
    )
    return [(str(n), str(t), str(c)) for n, t, c in result.result_rows]
