"""Partitions shared by the Binance assets: UTC day x registered symbol."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import dagster as dg

from warehouse_assets.lib import settings

BINANCE_SYMBOLS = dg.DynamicPartitionsDefinition(name="binance_symbols")

# No end_offset: only completed UTC days are partitions (today's open day is the stream's job).
DAILY = dg.DailyPartitionsDefinition(start_date=settings.klines_start_date().isoformat(), timezone="UTC")

BINANCE_DAILY_BY_SYMBOL = dg.MultiPartitionsDefinition({"date": DAILY, "symbol": BINANCE_SYMBOLS})

# Steps that call the Binance API share this pool (limit set in dagster.yaml), so concurrent runs do
# not split one IP's request-weight budget between processes that cannot see each other's counters.
BINANCE_API_POOL = "binance_api"

# A backfill becomes one run per symbol and year (at most 366 partitions): a year for five symbols is five
# runs, not 1,825. Not one run per whole range: Dagster's per-partition bookkeeping in a run grows with the
# run's size (measured: 365 partitions ~60 ms each, 1460 partitions ~110 ms each), so bounded runs keep a
# decade-long backfill linear.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=366)


def days_by_symbol(partition_keys: Sequence[str]) -> dict[str, list[date]]:
    """A run may hold many days of one symbol or many symbols of one day (single-run backfills)."""
    grouped: dict[str, list[date]] = defaultdict(list)
    for key in partition_keys:
        dims = BINANCE_DAILY_BY_SYMBOL.get_partition_key_from_str(str(key)).keys_by_dimension
        grouped[dims["symbol"]].append(date.fromisoformat(dims["date"]))
    return dict(grouped)
