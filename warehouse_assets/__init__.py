"""Crypto market-data warehouse: Dagster assets over ClickHouse (embedded chDB or a server)."""

__version__ = "0.1.0"
