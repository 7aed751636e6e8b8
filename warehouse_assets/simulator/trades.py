"""Synthetic aggregate trades that add up exactly to the synthetic 1m klines.

A minute of the synthetic market is described by a small "minute book" (built in market.py while
the day's klines are generated): LEVELS price levels (level 0 = open, 1 = close, 2 = high, 3 = low,
the rest inside the range), and per level and taker side the number of aggregate trades and their
total quantity in lots. The kline columns are computed from the book (volume, exact quote volume
sum(price * qty), taker sums, underlying trade count), so REST klines never need the trades
themselves and stay fast. `TradeGenerator.day` expands a book into the day's aggregate trades with
numpy in one go: quantities split per cell, the minute's first trade at the open level and its last
at the close level, sorted microsecond times, underlying trades per aggregate trade. Agg ids and
trade ids run on across days: each day's totals are fixed per (seed, symbol, day) in advance, so a
day's first ids are a prefix sum and any day can be built on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from warehouse_assets.simulator.market import SyntheticMarket

LEVELS = 6  # price levels per minute
CELLS = 2 * LEVELS  # (level, side); side 0 = taker buy (is_buyer_maker false), 1 = taker sell
FORCED = 4  # levels 0..3 (open, close, high, low) always get one aggregate trade
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class MinuteBook:
    """What each minute of a day trades, as (1440, LEVELS) / (1440,) int64 arrays.

    A level's aggregate trades carry `per_trade` lots each, except that `extra` lots more go to the
    first cell (level 0 = open, the taker-buy side if it has trades, else the taker-sell side).
    """

    levels: np.ndarray  # price of each level in ticks
    buys: np.ndarray  # aggregate trades per level with a taker buyer (is_buyer_maker false)
    sells: np.ndarray  # aggregate trades per level with a taker seller
    per_trade: np.ndarray
    extra: np.ndarray
    trades: np.ndarray  # underlying trades per minute (>= aggregate trades)

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, lots) per minute and cell, shape (1440, CELLS); cell = 2 * level + side."""
        n = len(self.levels)
        counts = np.stack([self.buys, self.sells], axis=2).reshape(n, CELLS)
        lots = counts * self.per_trade[:, None]
        lots[np.arange(n), np.where(self.buys[:, 0] > 0, 0, 1)] += self.extra
        return counts, lots


def spread(total: int, weights: np.ndarray) -> np.ndarray:
    """Split an integer total into len(weights) integers proportional to the weights, exactly."""
    out = np.floor(weights / weights.sum() * total).astype(np.int64)
    rest = int(total - out.sum())
    out[:rest] += 1  # rest < len(out); cheaper than ranking the fractions
    return out


def minute_book(
    rng: np.random.Generator,
    ticks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    lots: np.ndarray,
    taker_share: np.ndarray,
    activity: np.ndarray,
    totals: tuple[int, int],
) -> MinuteBook:
    """The book of a day: `ticks` are (open, close, high, low) per minute, lots 0 = no trades.

    totals = (aggregate trades, underlying trades) of the day; each live minute gets at least
    FORCED aggregate trades and at least as many lots as aggregate trades. Kept lean (REST klines
    build one book per day they serve): level weights are drawn per day, not per minute.
    """
    opens, closes, highs, lows = ticks
    n = len(lots)
    live = lots > 0
    agg_total, trade_total = totals
    agg = np.zeros(n, dtype=np.int64)
    agg[live] = FORCED + spread(agg_total - FORCED * int(live.sum()), activity[live])
    trades = agg.copy()
    trades[live] += spread(trade_total - agg_total, agg[live].astype(np.float64))
    levels = np.empty((n, LEVELS), dtype=np.int64)
    levels[:, 0], levels[:, 1], levels[:, 2], levels[:, 3] = opens, closes, highs, lows
    inside = rng.random((n, LEVELS - FORCED)) * (highs - lows)[:, None] + 0.5
    levels[:, FORCED:] = lows[:, None] + inside.astype(np.int64)
    weights = rng.uniform(0.2, 1.0, LEVELS)
    weights /= weights.sum()
    rest = np.maximum(agg - FORCED, 0)
    per_level = (rest[:, None] * weights).astype(np.int64)
    per_level[:, 0] += rest - per_level.sum(axis=1)
    per_level[:, :FORCED] += 1
    per_level[~live] = 0
    buys = (per_level * taker_share[:, None] + 0.5).astype(np.int64)
    lots = np.maximum(lots, agg)
    per_trade = lots // np.maximum(agg, 1)
    extra = np.where(live, lots - agg * per_trade, 0)
    return MinuteBook(levels, buys, per_level - buys, per_trade, extra, trades)


def book_columns(book: MinuteBook, tick_e8: int, lot_e8: int) -> dict[str, np.ndarray]:
    """Kline columns (1e-8 units) of a book: open, high, low, close, volume, quote, trades, takers, vwap.

    Levels 2 and 3 (high, low) always trade and the other levels lie between them.
    """
    scale, remainder = divmod(tick_e8 * lot_e8, 10**8)
    if remainder:
        raise ValueError(f"tick {tick_e8}e-8 * lot {lot_e8}e-8 needs more than 8 decimals; fix the spec")
    opens = book.levels[:, 0]
    agg = book.buys.sum(axis=1) + book.sells.sum(axis=1)
    volume = agg * book.per_trade + book.extra
    extra_is_buy = book.buys[:, 0] > 0
    taker_base = book.buys.sum(axis=1) * book.per_trade + np.where(extra_is_buy, book.extra, 0)
    buy_amount = (book.levels * book.buys).sum(axis=1)
    all_amount = buy_amount + (book.levels * book.sells).sum(axis=1)
    quote = all_amount * book.per_trade + opens * book.extra
    taker_quote = buy_amount * book.per_trade + np.where(extra_is_buy, opens * book.extra, 0)
    vwap = np.where(volume > 0, quote // np.maximum(volume, 1), opens)
    return {
        "open": opens * tick_e8,
        "high": book.levels[:, 2] * tick_e8,
        "low": book.levels[:, 3] * tick_e8,
        "close": book.levels[:, 1] * tick_e8,
        "volume": volume * lot_e8,
        "quote": quote * scale,
        "trades": book.trades,
        "taker_base": taker_base * lot_e8,
        "taker_quote": taker_quote * scale,
        "vwap": vwap * tick_e8,
    }


@dataclass(frozen=True)
class TradeDay:
    """A day's aggregate trades, ordered by agg id (= time). Prices/quantities in 1e-8 units."""

    agg_ids: np.ndarray
    first_ids: np.ndarray
    last_ids: np.ndarray
    times_us: np.ndarray
    prices_e8: np.ndarray
    qtys_e8: np.ndarray
    buyer_maker: np.ndarray  # bool


def expand(book: MinuteBook, rng: np.random.Generator, day_us: int, first_agg: int, first_trade: int,
           tick_e8: int, lot_e8: int) -> TradeDay:  # fmt: skip
    """The aggregate trades of a book (see the module docstring)."""
    cell_counts, cell_lots = book.cells()
    counts = cell_counts.ravel()
    n = int(counts.sum())
    cell = np.repeat(np.arange(counts.size), counts)
    minute, column = np.divmod(cell, CELLS)
    starts = np.cumsum(counts) - counts
    extra = cell_lots.ravel() - counts  # lots beyond one per trade, split per cell
    u = rng.exponential(size=n)
    share = u / np.bincount(cell, u, minlength=counts.size)[cell]
    qty = 1 + np.floor(share * extra[cell]).astype(np.int64)
    used = counts > 0
    qty[starts[used]] += (extra - np.bincount(cell, qty - 1, minlength=counts.size).astype(np.int64))[used]
    per_minute = cell_counts.sum(axis=1)
    live = np.flatnonzero(per_minute)
    minute_start = (np.cumsum(per_minute) - per_minute)[live]
    close_end = np.cumsum(counts)[live * CELLS + 3] - 1  # last trade of the close level's cells
    key = minute * 4.0 + 1.0 + rng.random(n)
    key[minute_start], key[close_end] = live * 4.0, live * 4.0 + 3.0
    order = np.argsort(key, kind="stable")
    minute, column, qty = minute[order], column[order], qty[order]
    times = day_us + np.sort(minute * MINUTE_US + rng.integers(0, MINUTE_US, n))
    spare = book.trades - per_minute  # underlying trades beyond one per aggregate trade
    u = rng.random(n) + 1e-9
    share = u / np.bincount(minute, u, minlength=len(per_minute))[minute]
    size = 1 + np.floor(share * spare[minute]).astype(np.int64)
    size[minute_start] += (spare - np.bincount(minute, size - 1, minlength=len(per_minute)).astype(np.int64))[
        live
    ]
    firsts = first_trade + np.cumsum(size) - size
    return TradeDay(
        agg_ids=first_agg + np.arange(n, dtype=np.int64),
        first_ids=firsts,
        last_ids=firsts + size - 1,
        times_us=times,
        prices_e8=book.levels[minute, column // 2] * tick_e8,
        qtys_e8=qty * lot_e8,
        buyer_maker=column % 2 == 1,
    )


class TradeGenerator:
    """Aggregate trades of the synthetic market per (symbol, UTC day), kept in a small LRU cache."""

    def __init__(self, market: SyntheticMarket, cache_days: int = 4) -> None:
        self.market = market
        self._cache: OrderedDict[tuple[str, int], TradeDay] = OrderedDict()
        self._cache_days = cache_days

    def first_day(self, symbol: str) -> int:
        return self.market.path(symbol).first_day

    def day_of_agg_id(self, symbol: str, agg_id: int) -> int:
        """The epoch day whose trades include agg_id (ids before the listing map to the listing day)."""
        path = self.market.path(symbol)
        index = int(np.searchsorted(path.agg_start, agg_id, side="right")) - 1
        return path.first_day + max(index, 0)

    def day(self, symbol: str, epoch_day: int) -> TradeDay:
        key = (symbol, epoch_day)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        path = self.market.path(symbol)
        index = epoch_day - path.first_day
        _, book = path.detail(epoch_day)
        rng = np.random.default_rng([path.seed, path.key, epoch_day + 1, 2])
        spec = path.spec
        trades = expand(book, rng, epoch_day * DAY_US, int(path.agg_start[index]),
                        int(path.trade_start[index]), spec.tick_e8, spec.lot_e8)  # fmt: skip
        self._cache[key] = trades
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return trades
