"""The running 1m kline of the live streams: exact aggregation of aggregate trades, push times, payload."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse_assets.simulator.trades import MINUTE_US
from warehouse_assets.simulator.ws_wire import E8, KLINE, decimal, js_bool

KLINE_PUSH_US = 2_000_000


@dataclass
class MinuteKline:
    """The running 1m kline of a minute, amounts in 1e-8 units."""

    open_us: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote: int = 0
    taker_base: int = 0
    taker_quote: int = 0
    trades: int = 0
    first_id: int = -1
    last_id: int = -1

    @classmethod
    def flat(cls, open_us: int, price: int) -> MinuteKline:
        return cls(open_us, price, price, price, price)

    def add(self, prices: np.ndarray, qtys: np.ndarray, firsts: np.ndarray, lasts: np.ndarray,
            maker: np.ndarray, tick: int, lot: int) -> None:  # fmt: skip
        """Fold in aggregate trades (e8 arrays); price * qty is exact: ticks * lots * (tick * lot / 1e8)."""
        if len(prices) == 0:
            return
        if self.first_id < 0:
            self.open = self.high = self.low = int(prices[0])
            self.first_id = int(firsts[0])
        self.high = max(self.high, int(prices.max()))
        self.low = min(self.low, int(prices.min()))
        self.close = int(prices[-1])
        self.last_id = int(lasts[-1])
        scale = tick * lot // E8
        amounts = (prices // tick) * (qtys // lot)
        taker = ~maker
        self.volume += int(qtys.sum())
        self.quote += int(amounts.sum()) * scale
        self.taker_base += int(qtys[taker].sum())
        self.taker_quote += int(amounts[taker].sum()) * scale
        self.trades += int((lasts - firsts + 1).sum())

    def payload(self, symbol: str, event_us: int, closed: bool, micro: bool) -> str:
        unit = 1 if micro else 1000
        start = self.open_us // unit
        return KLINE % (
            event_us // unit, symbol, start, start + MINUTE_US // unit - 1, symbol, self.first_id,
            self.last_id, decimal(self.open), decimal(self.close), decimal(self.high), decimal(self.low),
            decimal(self.volume), self.trades, js_bool(closed), decimal(self.quote),
            decimal(self.taker_base), decimal(self.taker_quote),
        )  # fmt: skip


def next_push_us(now_us: int) -> int:
    """The next even second after now that is not a minute start (that moment belongs to x:true)."""
    push = (now_us // KLINE_PUSH_US + 1) * KLINE_PUSH_US
    return push + KLINE_PUSH_US if push % MINUTE_US == 0 else push
