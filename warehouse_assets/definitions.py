"""The one composition point: loads every domain under defs/ and adds the shared resources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from warehouse_assets.defs.resources import BinanceResource, WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources={"warehouse": WarehouseResource(), "binance": BinanceResource()}),
    )
