"""The automation sensor that turns materialized klines (backfilled days included) into aggregate runs."""

import dagster as dg

from warehouse_assets.defs.aggregates.checks import OHLCV_1D, OHLCV_1H

aggregates_automation = dg.AutomationConditionSensorDefinition(
    "aggregates_automation",
    target=dg.AssetSelection.assets(OHLCV_1H, OHLCV_1D),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests binance/ohlcv_1h and binance/ohlcv_1d for every day whose klines were materialized.",
)
