"""Resources shared by every domain: the warehouse and the Binance REST client.

Both read their settings from the environment at run time (WAREHOUSE_URL, BINANCE_API_URL), so no
secret is ever part of Dagster's stored run config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

import dagster as dg
from clickhouse_connect.driver.client import Client

from warehouse_assets.lib import klines_store, settings
from warehouse_assets.lib.binance.archive import ArchiveClient
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The ClickHouse warehouse named by WAREHOUSE_URL (embedded chDB by default)."""

    lock_timeout_seconds: float | None = None

    def get(self) -> Warehouse:
        return Warehouse(lock_timeout=self.lock_timeout_seconds)


class BinanceResource(dg.ConfigurableResource):
    """Binance spot REST at BINANCE_API_URL (one request-weight budget per process) and the daily archives."""

    max_in_flight: int = 8

    def client(self) -> BinanceRestClient:
        return BinanceRestClient(max_in_flight=self.max_in_flight)

    def archive(self) -> ArchiveClient | None:
        """The data.binance.vision client (BINANCE_ARCHIVE_URL), or None when KLINES_ARCHIVE=false."""
        return ArchiveClient() if settings.klines_archive_enabled() else None

    @asynccontextmanager
    async def connected(
        self, symbols: Iterable[str]
    ) -> AsyncIterator[tuple[BinanceRestClient, ArchiveClient | None]]:
        """The REST client and the archive (None when off), open, with `symbols` checked against exchangeInfo."""
        archive = self.archive()
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(self.client())
            if archive is not None:
                await stack.enter_async_context(archive)
            await client.validate_symbols(sorted(symbols))
            yield client, archive


def column_schema(client: Client, warehouse: Warehouse, table: str) -> dg.TableSchema:
    """A warehouse table's columns, types and comments, as the column-schema metadata Dagster shows."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=comment or None)
            for name, type_, comment in klines_store.table_columns(client, warehouse.database, table)
        ]
    )
