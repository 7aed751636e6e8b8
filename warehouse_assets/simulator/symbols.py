"""Listed symbols: their assets, tick and lot sizes, listing dates and price history waypoints.

The synthetic market (market.py) draws prices through the waypoints; the exchangeInfo endpoint
describes the same symbols with Binance's symbol-entry shape. Amounts are integers in units of
1e-8 ("e8"), the precision of every Binance spot price and quantity string.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

E8 = 100_000_000
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")


@dataclass(frozen=True)
class SymbolSpec:
    """One listed spot symbol."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_e8: int  # PRICE_FILTER tickSize in 1e-8 units
    lot_e8: int  # LOT_SIZE stepSize in 1e-8 units
    listing: date
    waypoints: tuple[tuple[date, float], ...] = ()  # (day, price) the daily path goes through
    daily_vol: float = 0.04  # standard deviation of the daily log-return
    minute_volume: float = 1.0  # typical base volume per minute
    trade_size: float = 0.1  # typical base quantity per trade


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _wp(*pairs: tuple[str, float]) -> tuple[tuple[date, float], ...]:
    return tuple((_d(day), price) for day, price in pairs)


DEFAULT_SPECS: dict[str, SymbolSpec] = {
    spec.symbol: spec
    for spec in (
        SymbolSpec(
            "BTCUSDT", "BTC", "USDT", 1_000_000, 1_000, _d("2017-08-17"),
            _wp(("2017-08-17", 4300), ("2017-12-17", 19000), ("2018-12-15", 3200), ("2019-06-26", 12000),
                ("2020-03-13", 5000), ("2021-04-14", 63000), ("2021-07-20", 30000), ("2021-11-10", 67000),
                ("2022-11-21", 16000), ("2024-03-14", 72000), ("2025-01-01", 94000)),
            0.035, 20.0, 0.02,
        ),
        SymbolSpec(
            "ETHUSDT", "ETH", "USDT", 1_000_000, 10_000, _d("2017-08-17"),
            _wp(("2017-08-17", 300), ("2018-01-13", 1400), ("2018-12-15", 85), ("2020-03-13", 110),
                ("2021-11-10", 4800), ("2022-06-18", 900), ("2024-03-12", 4000), ("2025-01-01", 3350)),
            0.045, 300.0, 0.3,
        ),
        SymbolSpec(
            "SOLUSDT", "SOL", "USDT", 1_000_000, 1_000_000, _d("2020-08-11"),
            _wp(("2020-08-11", 3.0), ("2021-11-06", 258), ("2022-12-29", 8), ("2024-03-18", 200),
                ("2025-01-01", 190)),
            0.06, 2000.0, 5.0,
        ),
        SymbolSpec(
            "BNBUSDT", "BNB", "USDT", 1_000_000, 100_000, _d("2017-11-06"),
            _wp(("2017-11-06", 1.5), ("2018-01-12", 23), ("2019-06-22", 38), ("2020-03-13", 10),
                ("2021-05-10", 680), ("2022-06-18", 190), ("2024-06-06", 710), ("2025-01-01", 700)),
            0.045, 200.0, 0.5,
        ),
        SymbolSpec(
            "XRPUSDT", "XRP", "USDT", 10_000, 100_000_000, _d("2018-05-04"),
            _wp(("2018-05-04", 0.9), ("2018-09-21", 0.6), ("2020-03-13", 0.14), ("2021-04-14", 1.9),
                ("2022-06-18", 0.3), ("2024-12-03", 2.7), ("2025-01-01", 2.1)),
            0.05, 300_000.0, 500.0,
        ),
    )
}  # fmt: skip

DEFAULT_SYMBOLS = tuple(DEFAULT_SPECS)


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) by the longest known quote-asset suffix, e.g. ADABTC -> (ADA, BTC)."""
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


def spec_for(symbol: str) -> SymbolSpec:
    """The spec of a symbol: a realistic built-in one, or a deterministic generic one for any name."""
    if symbol in DEFAULT_SPECS:
        return DEFAULT_SPECS[symbol]
    base, quote = split_symbol(symbol)
    h = zlib.crc32(symbol.encode())
    price = 10 ** ((h % 5000) / 1000 - 2)  # 0.01 .. 1000, fixed per name
    magnitude = math.floor(math.log10(price))
    tick_e8 = 10 ** max(0, magnitude + 4)  # about five significant digits
    lot_e8 = 10 ** max(0, 6 - magnitude)  # a lot is worth about 0.01 to 0.1 quote units
    return SymbolSpec(
        symbol, base, quote, tick_e8, lot_e8, _d("2019-01-01"), ((_d("2019-01-01"), price),),
        0.05, 50_000 / price, 100 / price,
    )  # fmt: skip


def e8_str(value: int) -> str:
    """An e8 integer as Binance writes it: 8 decimals, '0.01000000'."""
    whole, fraction = divmod(value, E8)
    return f"{whole}.{fraction:08d}"


def precision(step_e8: int) -> int:
    """Decimal places of a step, e.g. 1_000_000 (0.01) -> 2."""
    places = 8
    while places > 0 and step_e8 % 10 == 0:
        step_e8 //= 10
        places -= 1
    return places


def exchange_info_entry(symbol: str, base: str, quote: str, tick_e8: int, lot_e8: int) -> dict[str, Any]:
    """A Binance spot exchangeInfo symbol entry (the current documented shape)."""
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                       "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": e8_str(tick_e8), "maxPrice": e8_str(tick_e8 * 10**11),
             "tickSize": e8_str(tick_e8)},
            {"filterType": "LOT_SIZE", "minQty": e8_str(lot_e8), "maxQty": e8_str(lot_e8 * 9 * 10**8),
             "stepSize": e8_str(lot_e8)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": e8_str(lot_e8 * 10**7),
             "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }  # fmt: skip
