"""Resources shared by every domain: the warehouse and the Binance REST client.

Both read their settings from the environment at run time (WAREHOUSE_URL, BINANCE_API_URL), so no
secret is ever part of Dagster's stored run config.
"""

from __future__ import annotations

import dagster as dg

from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The ClickHouse warehouse named by WAREHOUSE_URL (embedded chDB by default)."""

    lock_timeout_seconds: float | None = None

    def get(self) -> Warehouse:
        return Warehouse(lock_timeout=self.lock_timeout_seconds)


class BinanceResource(dg.ConfigurableResource):
    """Binance spot REST at BINANCE_API_URL, sharing one request-weight budget per process."""

    max_in_flight: int = 8

    def client(self) -> BinanceRestClient:
        return BinanceRestClient(max_in_flight=self.max_in_flight)
