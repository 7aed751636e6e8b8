"""The synthetic kline source: selects, aggregates and renders klines of the SyntheticMarket.

1m is served from the day matrices; every other interval that divides a day (3m .. 1d) is the
exact aggregate of its minutes. The kline of the current interval is still open, exactly as on
Binance: its close time is in the future and its values cover the minutes so far, the current
minute pro rata (so its values keep growing until it closes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse_assets.simulator.klines import KlineQuery, Ranges, SymbolListing, select_on_grid
from warehouse_assets.simulator.market import (
    CLOSE,
    DAY_MS,
    HIGH,
    LOW,
    OPEN,
    QUOTE_VOLUME,
    TAKER_BASE,
    TAKER_QUOTE,
    TRADES,
    VOLUME,
    VWAP,
    SyntheticMarket,
    quote_amount,
)
from warehouse_assets.simulator.protocol import INTERVAL_MS, MINUTE_MS
from warehouse_assets.simulator.symbols import E8

_DECIMAL_COLUMNS = [OPEN, HIGH, LOW, CLOSE, VOLUME, QUOTE_VOLUME, TAKER_BASE, TAKER_QUOTE]
SERVED = {name: ms for name, ms in INTERVAL_MS.items() if ms and ms >= MINUTE_MS and DAY_MS % ms == 0}


def aggregate(rows: np.ndarray) -> np.ndarray:
    """One kline from consecutive minute rows: first open, max high, min low, last close, sums."""
    out = rows[0].copy()
    out[HIGH] = rows[:, HIGH].max()
    out[LOW] = rows[:, LOW].min()
    out[CLOSE] = rows[-1, CLOSE]
    for column in (VOLUME, QUOTE_VOLUME, TRADES, TAKER_BASE, TAKER_QUOTE):
        out[column] = rows[:, column].sum()
    return out


class SyntheticSource:
    """KlineSource over a SyntheticMarket."""

    def __init__(self, market: SyntheticMarket) -> None:
        self.market = market

    def listings(self) -> dict[str, SymbolListing]:
        return {
            s.symbol: SymbolListing(s.symbol, s.base_asset, s.quote_asset, s.tick_e8, s.lot_e8)
            for s in self.market.specs.values()
        }

    def serves(self, interval: str) -> bool:
        return interval in SERVED

    def klines(self, query: KlineQuery, missing: Ranges, now_ms: int) -> tuple[list[int], list[str]]:
        step = SERVED[query.interval]
        first = self.market.listing_ms(query.symbol)
        last = now_ms // step * step
        lo = first if query.start_us is None else -(-query.start_us // 1000)
        hi = last if query.end_us is None else query.end_us // 1000
        opens = select_on_grid(first, last, step, lo, hi, query.limit, query.newest, missing)
        if len(opens) == 0:
            return [], []
        matrix = self.rows(query.symbol, opens, step, now_ms)
        return opens.tolist(), render(opens, matrix, step, query.micro)

    def rows(self, symbol: str, opens: np.ndarray, step: int, now_ms: int) -> np.ndarray:
        """The value rows (n, 10) of the klines opening at `opens` (sorted, on the step grid)."""
        per = step // MINUTE_MS
        days = opens // DAY_MS
        parts = []
        for day in np.unique(days):
            day_rows = self.market.day(symbol, int(day))
            if per > 1:
                day_rows = aggregate_day(day_rows, per)
            slots = (opens[days == day] - int(day) * DAY_MS) // step
            parts.append(day_rows[slots])
        matrix = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
        open_now = now_ms // step * step
        if int(opens[-1]) == open_now:
            matrix[-1] = self.open_kline(symbol, open_now, now_ms)
        return matrix

    def open_kline(self, symbol: str, open_ms: int, now_ms: int) -> np.ndarray:
        """The still-open kline starting at open_ms: its complete minutes plus the current one pro rata."""
        day = open_ms // DAY_MS
        day_rows = self.market.day(symbol, day)
        first_minute = (open_ms - day * DAY_MS) // MINUTE_MS
        current_minute = (now_ms - day * DAY_MS) // MINUTE_MS
        minutes = day_rows[first_minute : current_minute + 1].copy()
        fraction = (now_ms % MINUTE_MS) / MINUTE_MS
        spec = self.market.specs[symbol]
        minutes[-1] = scale_minute(minutes[-1], fraction, spec.tick_e8, spec.lot_e8)
        return aggregate(minutes)


def scale_minute(row: np.ndarray, fraction: float, tick: int, lot_e8: int) -> np.ndarray:
    """A minute row as it stands after `fraction` (0..1) of the minute: same open, partial values."""
    out = row.copy()
    o, h, lo, c = (int(row[i]) for i in (OPEN, HIGH, LOW, CLOSE))
    close = o + int((c - o) * fraction) // tick * tick
    high = max(o, close, o + int((h - o) * fraction) // tick * tick)
    low = min(o, close, o - int((o - lo) * fraction) // tick * tick)
    volume = int(int(row[VOLUME]) // lot_e8 * fraction) * lot_e8
    taker = int(int(row[TAKER_BASE]) // lot_e8 * fraction) * lot_e8
    vwap = min(max(int(row[VWAP]), low), high)
    out[[HIGH, LOW, CLOSE, VOLUME, TAKER_BASE, VWAP]] = [high, low, close, volume, taker, vwap]
    out[TRADES] = 0 if volume == 0 else max(1, int(int(row[TRADES]) * fraction))
    amounts = quote_amount(np.array([volume, taker], dtype=np.int64), np.array([vwap, vwap], dtype=np.int64))
    out[QUOTE_VOLUME], out[TAKER_QUOTE] = int(amounts[0]), int(amounts[1])
    return out


def aggregate_day(day_rows: np.ndarray, per: int) -> np.ndarray:
    """Aggregate a day's minutes into klines of `per` minutes each (per divides 1440)."""
    groups = day_rows.reshape(-1, per, day_rows.shape[1])
    out = groups[:, 0, :].copy()
    out[:, HIGH] = groups[:, :, HIGH].max(axis=1)
    out[:, LOW] = groups[:, :, LOW].min(axis=1)
    out[:, CLOSE] = groups[:, -1, CLOSE]
    for column in (VOLUME, QUOTE_VOLUME, TRADES, TAKER_BASE, TAKER_QUOTE):
        out[:, column] = groups[:, :, column].sum(axis=1)
    return out


def _texts(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def render(opens_ms: np.ndarray, matrix: np.ndarray, step_ms: int, micro: bool) -> list[str]:
    """JSON texts of kline rows, 8-decimal strings exactly like Binance ("7195.24000000").

    Built column-wise with Arrow string kernels (a third faster than %-formatting each row).
    """
    scale = 1000 if micro else 1
    opens = opens_ms * scale
    closes = opens + step_ms * scale - 1
    whole, frac = np.divmod(matrix[:, _DECIMAL_COLUMNS], E8)

    def decimal(i: int) -> list[pa.Array | str]:
        return [_texts(whole[:, i]), ".", pc.utf8_lpad(_texts(frac[:, i]), 8, "0")]

    parts: list[pa.Array | str] = ["[", _texts(opens), ',"', *decimal(0)]
    for i in range(1, 5):
        parts += ['","', *decimal(i)]
    parts += ['",', _texts(closes), ',"', *decimal(5), '",', _texts(matrix[:, TRADES]), ',"']
    parts += [*decimal(6), '","', *decimal(7), '","0"]']
    rows: list[str] = pc.binary_join_element_wise(*parts, "").to_pylist()
    return rows
