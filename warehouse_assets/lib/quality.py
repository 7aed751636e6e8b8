"""Warehouse-wide quality facts: table health from system.parts, and how fresh each symbol's klines are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from clickhouse_connect.driver.client import Client

from warehouse_assets.lib.warehouse.sql import load_sql


@dataclass(frozen=True)
class TableHealth:
    table: str
    rows: int
    bytes_on_disk: int
    compressed_bytes: int
    uncompressed_bytes: int
    active_parts: int
    partitions: int

    @property
    def compression_ratio(self) -> float:
        return self.uncompressed_bytes / self.compressed_bytes if self.compressed_bytes else 0.0

    @property
    def bytes_per_row(self) -> float:
        return self.bytes_on_disk / self.rows if self.rows else 0.0


def table_health(client: Client, database: str) -> list[TableHealth]:
    rows = client.query(
        load_sql("quality/table_health.sql").text, parameters={"database": database}
    ).result_rows
    return [
        TableHealth(str(t), int(r), int(b), int(c), int(u), int(p), int(n)) for t, r, b, c, u, p, n, _ in rows
    ]


@dataclass(frozen=True)
class Freshness:
    symbol: str
    newest_day: date | None  # the newest UTC day that has ended and has klines (within the lookback)
    minutes: int  # 1m klines that day holds
    age_hours: float | None  # hours since that day ended; None: no such day in the lookback

    def fresh(self, limit_hours: float) -> bool:
        return self.age_hours is not None and self.age_hours <= limit_hours


def klines_freshness(
    client: Client,
    database: str,
    *,
    exchange: str,
    symbols: Sequence[str],
    now: datetime,
    lookback_days: int = 60,
) -> list[Freshness]:
    """Per symbol, the newest ended UTC day with klines and its age at `now` (the end of that day to now)."""
    today = now.astimezone(UTC).date()
    before = datetime.combine(today, datetime.min.time(), UTC)  # days that have ended
    since = before - timedelta(days=lookback_days)
    params = {
        "exchange": exchange,
        "symbols": list(symbols),
        "since_ms": int(since.timestamp() * 1000),
        "before_ms": int(before.timestamp() * 1000),
    }
    found = {
        str(symbol): (date.fromisoformat(str(day)), int(minutes))
        for symbol, day, minutes in client.query(
            load_sql("quality/newest_days.sql").render(database=database), parameters=params
        ).result_rows
    }
    out = []
    for symbol in symbols:
        if symbol not in found:
            out.append(Freshness(symbol, None, 0, None))
            continue
        day, minutes = found[symbol]
        ended = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        out.append(Freshness(symbol, day, minutes, round((now - ended).total_seconds() / 3600, 2)))
    return out
