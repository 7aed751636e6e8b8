"""Hourly and daily OHLCV (`ohlcv_1h`, `ohlcv_1d`) built from `klines_1m`, and the checks that they are exact.

A day is rebuilt alone: its hours from its minutes, then the day from its hours, each as a new build that
replaces the older ones (sql/rebuild). Before building, the day's klines are read back and validated
against the `schemas.Klines1m` model; bad minutes are never aggregated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib import schemas
from warehouse_assets.lib.klines_store import next_version_ms
from warehouse_assets.lib.records import DAY_MS
from warehouse_assets.lib.warehouse.sql import load_sql, rebuild_finish

HOURS_TABLE = "ohlcv_1h"
DAYS_TABLE = "ohlcv_1d"


class BadKlinesError(ValueError):
    """The klines of a day fail the schema: its aggregates are not built. `report` holds the failures."""

    def __init__(self, symbol: str, day: str, report: schemas.SchemaReport) -> None:
        self.symbol = symbol
        self.day = day
        self.report = report
        super().__init__(
            f"klines_1m of {symbol} {day} fail the {report.model} schema ({report.failing_rows} rows, "
            f"{report.failure_count} failures), so its hourly and daily aggregates were not built; "
            "re-materialize binance/klines_1m for that day to replace the bad rows, then the aggregates"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (BadKlinesError, (self.symbol, self.day, self.report))


@dataclass(frozen=True)
class DayBuild:
    symbol: str
    day: str
    hours: int  # hourly rows built
    incomplete_hours: int  # hours built from fewer than 60 minutes
    minutes: int  # 1m klines under the day
    replaced_older: int  # rows of earlier builds (hours and days) removed
    hour_mismatches: list[Mismatch]
    day_mismatches: list[Mismatch]


@dataclass(frozen=True)
class Mismatch:
    """An aggregate row that differs from its sources aggregated again (None: the row is missing there)."""

    open_ms: int
    from_sources: tuple[Any, ...] | None
    stored: tuple[Any, ...] | None

    @property
    def open_time(self) -> str:
        return datetime.fromtimestamp(self.open_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def _day_window(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + DAY_MS


def klines_rows(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> pa.Table:
    """The stored klines of a window (plain SELECT), in the columnar form the schema validates."""
    params = {"exchange": exchange, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}
    return client.query_arrow(load_sql("klines/window_rows.sql").render(database=database), parameters=params)


def validate_klines_day(
    client: Client, database: str, *, exchange: str, symbol: str, day: date
) -> schemas.SchemaReport:
    start_ms, end_ms = _day_window(day)
    rows = klines_rows(client, database, exchange=exchange, symbol=symbol, start_ms=start_ms, end_ms=end_ms)
    return schemas.validate(schemas.Klines1m, rows)


def rebuild_day(client: Client, database: str, *, exchange: str, symbol: str, day: date) -> DayBuild:
    """Validate the day's klines, rebuild its hours and the day, and reconcile both (read back).

    Raises `BadKlinesError` (nothing built) when the klines fail the schema.
    """
    report = validate_klines_day(client, database, exchange=exchange, symbol=symbol, day=day)
    if not report.passed:
        raise BadKlinesError(symbol, day.isoformat(), report)
    start_ms, end_ms = _day_window(day)
    window = {"exchange": exchange, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}
    replaced = 0
    for build_file, table in (
        ("aggregates/build_1h.sql", HOURS_TABLE),
        ("aggregates/build_1d.sql", DAYS_TABLE),
    ):
        params = {**window, "version_ms": next_version_ms()}
        client.command(load_sql(build_file).render(database=database), parameters=params)
        _, older = rebuild_finish(client, database, table, params)
        replaced += older
    summary = client.query(
        load_sql("aggregates/day_summary.sql").render(database=database), parameters=window
    )
    hours, incomplete, minutes = (0, 0, 0)
    for _, h, i, m in summary.result_rows:
        hours, incomplete, minutes = int(h), int(i), int(m)
    return DayBuild(
        symbol=symbol,
        day=day.isoformat(),
        hours=hours,
        incomplete_hours=incomplete,
        minutes=minutes,
        replaced_older=replaced,
        hour_mismatches=reconcile(client, database, "aggregates/reconcile_1h.sql", window),
        day_mismatches=reconcile(client, database, "aggregates/reconcile_1d.sql", window),
    )


def reconcile(client: Client, database: str, sql_file: str, window: dict[str, Any]) -> list[Mismatch]:
    """Rows of an aggregate table that differ from their sources aggregated again (see the SQL file)."""
    rows = client.query(load_sql(sql_file).render(database=database), parameters=window).result_rows
    return [
        Mismatch(int(t), tuple(src) if n_src else None, tuple(stored) if n_stored else None)
        for t, src, stored, n_src, n_stored in rows
    ]


def reconcile_days(
    client: Client, database: str, *, exchange: str, symbol: str, days: Sequence[date]
) -> list[DayBuild]:
    """The reconciliation of already built days, without rebuilding them."""
    out = []
    for day in days:
        start_ms, end_ms = _day_window(day)
        window = {"exchange": exchange, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}
        out.append(
            DayBuild(
                symbol,
                day.isoformat(),
                0,
                0,
                0,
                0,
                reconcile(client, database, "aggregates/reconcile_1h.sql", window),
                reconcile(client, database, "aggregates/reconcile_1d.sql", window),
            )  # fmt: skip
        )
    return out
