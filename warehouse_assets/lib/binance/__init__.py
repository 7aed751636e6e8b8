"""Binance spot: the REST client (`rest`) and the one module that knows Binance's wire format (`wire`)."""

from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.binance.wire import ExchangeInfo, RateLimit, SymbolInfo

__all__ = ["BinanceRestClient", "ExchangeInfo", "RateLimit", "SymbolInfo"]
