"""Typed records that cross module boundaries. Prices and quantities are exact `Decimal`s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(
    slots=True
)  # not frozen: frozen __init__ costs 2.9 us vs 0.5 us, on the hot path of every backfill
class Kline:
    """One closed candle as the exchange published it. Times are epoch milliseconds (UTC). Treat as immutable."""

    exchange: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal


# Columnar form of 1m klines, the shape bulk paths move and store (exchange strings to ClickHouse
# without a Python object per value). Decimal(38, 18) matches the warehouse column type exactly.
DECIMAL = pa.decimal128(38, 18)
TIME_MS = pa.timestamp("ms", tz="UTC")
KLINE_DECIMAL_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)
KLINE_SCHEMA = pa.schema(
    [
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("open_time", TIME_MS),
        ("close_time", TIME_MS),
        ("open", DECIMAL),
        ("high", DECIMAL),
        ("low", DECIMAL),
        ("close", DECIMAL),
        ("volume", DECIMAL),
        ("quote_volume", DECIMAL),
        ("trades", pa.uint64()),
        ("taker_buy_base_volume", DECIMAL),
        ("taker_buy_quote_volume", DECIMAL),
    ]
)


def klines_to_table(klines: Sequence[Kline]) -> pa.Table:
    """Records to the columnar form. Raises pyarrow.ArrowInvalid rather than drop a digit."""
    columns: dict[str, pa.Array] = {
        "exchange": pa.array([k.exchange for k in klines], pa.string()),
        "symbol": pa.array([k.symbol for k in klines], pa.string()),
        "open_time": pa.array([k.open_time for k in klines], pa.int64()).cast(TIME_MS),
        "close_time": pa.array([k.close_time for k in klines], pa.int64()).cast(TIME_MS),
        "trades": pa.array([k.trades for k in klines], pa.uint64()),
    }
    for name in KLINE_DECIMAL_FIELDS:
        columns[name] = pa.array([getattr(k, name) for k in klines], DECIMAL)
    return pa.table([columns[f.name] for f in KLINE_SCHEMA], schema=KLINE_SCHEMA)


def table_to_klines(table: pa.Table, interval: str = "1m") -> list[Kline]:
    """The columnar form back to records (tests and small callers; bulk paths stay columnar)."""
    columns = {
        name: table.column(name).to_pylist()
        for name in ("exchange", "symbol", "trades", *KLINE_DECIMAL_FIELDS)
    }
    for name in ("open_time", "close_time"):  # integer milliseconds, never through float seconds
        columns[name] = table.column(name).cast(pa.int64()).to_pylist()
    return [
        Kline(interval=interval, **{name: values[i] for name, values in columns.items()})
        for i in range(table.num_rows)
    ]
