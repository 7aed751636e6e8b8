"""Partitions shared by the Binance assets: UTC day x registered symbol."""

from __future__ import annotations

import dagster as dg

from warehouse_assets.lib import settings

BINANCE_SYMBOLS = dg.DynamicPartitionsDefinition(name="binance_symbols")

# No end_offset: only completed UTC days are partitions (today's open day is the stream's job).
DAILY = dg.DailyPartitionsDefinition(start_date=settings.klines_start_date().isoformat(), timezone="UTC")

BINANCE_DAILY_BY_SYMBOL = dg.MultiPartitionsDefinition({"date": DAILY, "symbol": BINANCE_SYMBOLS})

# Steps that call the Binance API share this pool (limit set in dagster.yaml), so concurrent runs do
# not split one IP's request-weight budget between processes that cannot see each other's counters.
BINANCE_API_POOL = "binance_api"
