"""Synthetic market data: deterministic, random-access 1m klines for the listed symbols.

Per symbol, a seeded daily path of log-prices runs from the listing day through the price
waypoints of symbols.py (a Brownian bridge between waypoints, a random walk after the last one).
Within a day, the 1441 minute boundaries are a seeded (seed, symbol, day) Brownian bridge between
the two daily anchors, with volatility and volume following a UTC intraday profile. A day is
generated at once with numpy (about a millisecond) and kept in an LRU cache, so any page of
history is cheap to serve. Every value is an integer in 1e-8 units, exact on the tick/lot grid.
Volume, quote volume, trade count and taker sums come from the day's minute book (trades.py), so
the aggregate trades that TradeGenerator expands from it add up to every kline exactly.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from datetime import date

import numpy as np

from warehouse_assets.simulator.symbols import E8, SymbolSpec
from warehouse_assets.simulator.trades import MinuteBook, book_columns, minute_book

MINUTES_PER_DAY = 1440
DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)
HORIZON = date(2100, 1, 1)  # the daily path is drawn up to here, whatever today is

# Columns of a day matrix (int64, shape (1440, 10)); prices and amounts in 1e-8 units.
OPEN, HIGH, LOW, CLOSE, VOLUME, QUOTE_VOLUME, TRADES, TAKER_BASE, TAKER_QUOTE, VWAP = range(10)
N_COLUMNS = 10
DEFAULT_TRADES_PER_DAY = 100_000  # typical aggregate trades per symbol and day (--trades-per-day)
MIN_AGG_PER_DAY = 4 * 1440  # every minute with trades has at least 4 aggregate trades


def _intraday_profile() -> np.ndarray:
    """Relative activity per UTC minute (mean 1): quiet Asian night, busy EU and US sessions."""
    hours = np.arange(MINUTES_PER_DAY) / 60.0
    profile = (
        1.0
        + 0.9 * np.exp(-(((hours - 14.5) / 2.5) ** 2))
        + 0.35 * np.exp(-(((hours - 8.5) / 2.0) ** 2))
        - 0.35 * np.exp(-(((hours - 4.0) / 2.5) ** 2))
    )
    profile[::60] *= 1.4  # the top of each hour is busier
    return profile / profile.mean()


PROFILE = _intraday_profile()
CUM_VARIANCE = np.concatenate(([0.0], np.cumsum(PROFILE))) / PROFILE.sum()  # time change of the bridge


def _epoch_day(day: date) -> int:
    return (day - EPOCH).days


class SymbolPath:
    """The daily anchors (log-prices at 00:00 UTC) and volume factors of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, trades_per_day: int = DEFAULT_TRADES_PER_DAY) -> None:
        self.spec = spec
        self.seed = seed
        self.key = zlib.crc32(spec.symbol.encode())
        self.first_day = _epoch_day(spec.listing)
        n_days = _epoch_day(HORIZON) - self.first_day
        rng = np.random.default_rng([seed, self.key, 0])
        steps = rng.standard_normal(n_days) * spec.daily_vol
        log_anchor = np.empty(n_days + 1)
        points = [(_epoch_day(d) - self.first_day, float(np.log(p))) for d, p in spec.waypoints]
        if not points or points[0][0] != 0:
            raise ValueError(f"{spec.symbol}: the first waypoint must be the listing day {spec.listing}")
        for (i0, y0), (i1, y1) in zip(points, points[1:], strict=False):
            walk = np.concatenate(([0.0], np.cumsum(steps[i0:i1])))
            frac = np.arange(i1 - i0 + 1) / (i1 - i0)
            log_anchor[i0 : i1 + 1] = y0 + walk - frac * (walk[-1] - (y1 - y0))
        last, y_last = points[-1]
        log_anchor[last:] = y_last + np.concatenate(([0.0], np.cumsum(steps[last:] * 0.7)))
        self.log_anchor = log_anchor
        self.volume_factor = np.exp(rng.standard_normal(n_days) * 0.35 - 0.06)
        # aggregate and underlying trades per day, fixed in advance so that ids are prefix sums
        self.agg_day = np.maximum(
            MIN_AGG_PER_DAY, np.rint(trades_per_day * np.sqrt(self.volume_factor))
        ).astype(np.int64)
        ratio = rng.uniform(0.4, 1.2, n_days)
        self.trade_day = self.agg_day + np.rint(self.agg_day * ratio).astype(np.int64)
        self.agg_start = np.concatenate(([0], np.cumsum(self.agg_day)))
        self.trade_start = np.concatenate(([0], np.cumsum(self.trade_day)))

    def ticks(self, log_price: np.ndarray) -> np.ndarray:
        """Log-prices to whole ticks (at least one tick)."""
        return np.maximum(1, np.rint(np.exp(log_price) * (E8 / self.spec.tick_e8))).astype(np.int64)

    def day(self, epoch_day: int) -> np.ndarray:
        """The 1440 one-minute klines of a UTC day as an int64 matrix (see the column constants)."""
        return self.detail(epoch_day)[0]

    def detail(self, epoch_day: int) -> tuple[np.ndarray, MinuteBook]:
        """The day matrix and the minute book it was computed from (trades.py expands the book)."""
        spec = self.spec
        index = epoch_day - self.first_day
        if not 0 <= index < len(self.volume_factor):
            raise ValueError(f"{spec.symbol}: day {epoch_day} is outside {spec.listing}..{HORIZON}")
        rng = np.random.default_rng([self.seed, self.key, epoch_day + 1])
        z, wick_hi, wick_lo, vol_noise, trade_noise = rng.standard_normal((5, MINUTES_PER_DAY))
        taker_share, _unused = rng.uniform(0.3, 0.7, (2, MINUTES_PER_DAY))
        forced_zero = rng.random(MINUTES_PER_DAY) < 0.0005

        a0, a1 = self.log_anchor[index], self.log_anchor[index + 1]
        sigma = spec.daily_vol * np.sqrt(PROFILE / MINUTES_PER_DAY)
        walk = np.concatenate(([0.0], np.cumsum(z * sigma)))
        path = a0 + walk - CUM_VARIANCE * (walk[-1] - (a1 - a0))
        ticks = self.ticks(path)
        ticks[0], ticks[-1] = self.ticks(np.array([a0, a1]))  # bit-identical with the neighbour days

        opens, closes = ticks[:-1], ticks[1:]
        rel_move = np.abs(closes - opens) / np.maximum(opens, 1) / sigma
        base_volume = (
            spec.minute_volume
            * self.volume_factor[index]
            * PROFILE
            * np.exp(0.5 * vol_noise - 0.125)
            * (0.5 + 0.6 * np.minimum(rel_move, 4.0))
        )
        lots = np.floor(base_volume * (E8 / spec.lot_e8)).astype(np.int64)
        zero = (lots == 0) | forced_zero
        zero[-1] = False  # the last minute must close on the next day's anchor
        lots[-1] = max(int(lots[-1]), 1)
        for i in np.flatnonzero(zero):  # a minute without trades is flat: close = open
            ticks[i + 1] = ticks[i]
        opens, closes = ticks[:-1], ticks[1:]

        top, bottom = np.maximum(opens, closes), np.minimum(opens, closes)
        highs = top + np.floor(np.abs(wick_hi) * 0.6 * sigma * top).astype(np.int64)
        lows = np.maximum(1, bottom - np.floor(np.abs(wick_lo) * 0.6 * sigma * bottom).astype(np.int64))
        highs[zero], lows[zero] = top[zero], bottom[zero]
        lots[zero] = 0

        activity = PROFILE * np.exp(0.3 * trade_noise) * (0.5 + 0.6 * np.minimum(rel_move, 4.0))
        book = minute_book(
            np.random.default_rng([self.seed, self.key, epoch_day + 1, 1]),
            (opens, closes, highs, lows),
            lots,
            taker_share,
            activity,
            (int(self.agg_day[index]), int(self.trade_day[index])),
        )
        columns = book_columns(book, spec.tick_e8, spec.lot_e8)
        out = np.empty((MINUTES_PER_DAY, N_COLUMNS), dtype=np.int64)
        for column, name in enumerate(_BOOK_COLUMNS):
            out[:, column] = columns[name]
        return out, book


_BOOK_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote",
    "trades",
    "taker_base",
    "taker_quote",
    "vwap",
)


def quote_amount(base_e8: np.ndarray, price_e8: np.ndarray) -> np.ndarray:
    """base * price rounded half-up to 1e-8, exact in int64.

    The plain product overflows int64 (20 BTC at 100k USD is 2e22 in 1e-16 units), so both factors
    are split into whole units and 1e-8 fractions; every partial term is at most the result.
    """
    base_whole, base_frac = np.divmod(base_e8, E8)
    price_whole, price_frac = np.divmod(price_e8, E8)
    return (
        base_whole * price_whole * E8
        + base_whole * price_frac
        + base_frac * price_whole
        + (base_frac * price_frac + E8 // 2) // E8
    )


class SyntheticMarket:
    """Day matrices of the listed symbols, generated on demand and kept in an LRU cache."""

    def __init__(
        self,
        specs: list[SymbolSpec],
        seed: int,
        cache_days: int = 512,
        trades_per_day: int = DEFAULT_TRADES_PER_DAY,
    ) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.seed = seed
        self.trades_per_day = trades_per_day  # read when a symbol's path is first built
        self._paths: dict[str, SymbolPath] = {}
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_days = cache_days

    def listing_ms(self, symbol: str) -> int:
        return _epoch_day(self.specs[symbol].listing) * DAY_MS

    def path(self, symbol: str) -> SymbolPath:
        if symbol not in self._paths:
            self._paths[symbol] = SymbolPath(self.specs[symbol], self.seed, self.trades_per_day)
        return self._paths[symbol]

    def day(self, symbol: str, epoch_day: int) -> np.ndarray:
        """The (1440, 10) matrix of one UTC day; read-only, shared through the cache."""
        key = (symbol, epoch_day)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        matrix = self.path(symbol).day(epoch_day)
        matrix.flags.writeable = False
        self._cache[key] = matrix
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return matrix
