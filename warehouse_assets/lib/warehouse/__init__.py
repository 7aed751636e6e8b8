"""The one way the project talks to ClickHouse: embedded chDB or a server, chosen by WAREHOUSE_URL."""

from warehouse_assets.lib.warehouse.client import Warehouse, WarehouseLockedError, WarehouseOpenError
from warehouse_assets.lib.warehouse.migrations import MigrationError, apply_migrations
from warehouse_assets.lib.warehouse.sql import SqlFile, load_sql, validate_identifier
from warehouse_assets.lib.warehouse.target import WarehouseTarget, parse_warehouse_url

__all__ = [
    "MigrationError",
    "SqlFile",
    "Warehouse",
    "WarehouseLockedError",
    "WarehouseOpenError",
    "WarehouseTarget",
    "apply_migrations",
    "load_sql",
    "parse_warehouse_url",
    "validate_identifier",
]
