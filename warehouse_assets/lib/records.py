"""Typed records that cross module boundaries. Prices and quantities are exact `Decimal`s."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Kline:
    """One closed candle as the exchange published it. Times are epoch milliseconds (UTC)."""

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
