"""Rate mode of the live streams: templates of natural trades, pre-rendered, and the running ids (ws_feed.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse_assets.simulator.trades import TradeDay
from warehouse_assets.simulator.ws_wire import decimal, js_bool

RATE_TEMPLATES = 4096


@dataclass
class RateState:
    """Rate mode: templates of natural trades, pre-rendered, and the running ids."""

    start_us: int
    rate: float
    next_agg: int
    next_trade: int
    prices: np.ndarray
    qtys: np.ndarray
    sizes: np.ndarray
    maker: np.ndarray
    formats: list[str]  # aggTrade payload per template with %d for E, a, f, l, T
    sent: int = 0
    position: int = 0

    @classmethod
    def start(cls, symbol: str, day: TradeDay, cursor: int, now: int, rate: float) -> RateState:
        """Templates: RATE_TEMPLATES natural trades from `cursor` on (or the day's last ones); ids from the cursor."""
        n = len(day.agg_ids)
        lo = max(0, min(cursor, n - RATE_TEMPLATES))
        pick = slice(lo, min(n, lo + RATE_TEMPLATES))
        if cursor < n:
            next_agg, next_trade = int(day.agg_ids[cursor]), int(day.first_ids[cursor])
        else:
            next_agg, next_trade = int(day.agg_ids[-1]) + 1, int(day.last_ids[-1]) + 1
        prices, qtys, maker = day.prices_e8[pick], day.qtys_e8[pick], day.buyer_maker[pick]
        formats = [
            f'{{"e":"aggTrade","E":%d,"s":"{symbol}","a":%d,"p":"{decimal(p)}","q":"{decimal(q)}",'
            f'"f":%d,"l":%d,"T":%d,"m":{js_bool(m)},"M":true}}'
            for p, q, m in zip(prices.tolist(), qtys.tolist(), maker.tolist(), strict=True)
        ]
        sizes = day.last_ids[pick] - day.first_ids[pick] + 1
        return cls(now, rate, next_agg, next_trade, prices, qtys, sizes, maker, formats)
