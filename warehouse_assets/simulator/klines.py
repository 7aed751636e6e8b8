"""Which klines a /api/v3/klines request selects, shared by the synthetic and the archive source.

Binance semantics (rest-api.md): klines are identified by their open time; with startTime the
oldest `limit` klines whose open time is >= startTime (and <= endTime) are returned; with only
endTime the newest `limit` klines up to endTime; with neither the newest `limit` klines. Open times
inside a `missing` fault range (half-open, ms) are skipped as if the exchange had no data there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from warehouse_assets.simulator.protocol import MICROS_THRESHOLD

Ranges = list[tuple[int, int]]  # half-open [start_ms, end_ms) open-time ranges


@dataclass(frozen=True)
class KlineQuery:
    """A validated klines request. Bounds are inclusive open times in microseconds (None = open)."""

    symbol: str
    interval: str
    start_us: int | None
    end_us: int | None
    limit: int
    micro: bool  # answer times in microseconds (X-MBX-TIME-UNIT: MICROSECOND)

    @property
    def newest(self) -> bool:
        """Take the newest `limit` klines (no startTime) rather than the oldest."""
        return self.start_us is None


@dataclass(frozen=True)
class SymbolListing:
    """What exchangeInfo says about a symbol."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_e8: int
    lot_e8: int


class KlineSource(Protocol):
    """Where klines come from: the synthetic market or an archive of real files."""

    def listings(self) -> dict[str, SymbolListing]: ...

    def serves(self, interval: str) -> bool: ...

    def klines(self, query: KlineQuery, missing: Ranges, now_ms: int) -> tuple[list[int], list[str]]:
        """(open times in ms, JSON array texts) of the selected klines, oldest first."""
        ...


MAX_MICROS = 2**62  # far beyond any kline; keeps huge request values inside int64


def to_micros(value: int) -> int:
    """A startTime/endTime in ms or us (decided by magnitude) as microseconds."""
    return min(value if value >= MICROS_THRESHOLD else value * 1000, MAX_MICROS)


def _ceil_grid(value: int, first: int, step: int) -> int:
    return first + -((first - value) // step) * step


def select_on_grid(
    first: int, last: int, step: int, lo: int, hi: int, limit: int, newest: bool, missing: Ranges
) -> np.ndarray:
    """Open times first + k*step within [lo, hi] and [first, last], minus missing ranges, `limit` of them."""
    a = max(first, _ceil_grid(lo, first, step))
    b = min(last, hi)
    b = first + (b - first) // step * step
    if a > b:
        return np.empty(0, dtype=np.int64)
    segments = [(a, b)]  # inclusive grid points
    for start, end in sorted(missing):
        cut_lo, cut_hi = _ceil_grid(start, first, step), _ceil_grid(end, first, step) - step
        if cut_lo > cut_hi:
            continue
        kept: list[tuple[int, int]] = []
        for s, e in segments:
            if cut_hi < s or cut_lo > e:
                kept.append((s, e))
                continue
            if s < cut_lo:
                kept.append((s, cut_lo - step))
            if cut_hi < e:
                kept.append((cut_hi + step, e))
        segments = kept
    pieces: list[np.ndarray] = []
    remaining = limit
    for s, e in reversed(segments) if newest else segments:
        count = min(remaining, (e - s) // step + 1)
        if newest:
            pieces.append(np.arange(e - (count - 1) * step, e + 1, step, dtype=np.int64))
        else:
            pieces.append(np.arange(s, s + count * step, step, dtype=np.int64))
        remaining -= count
        if remaining == 0:
            break
    if not pieces:
        return np.empty(0, dtype=np.int64)
    if newest:
        pieces.reverse()
    return np.concatenate(pieces)


def select_in_array(opens_us: np.ndarray, query: KlineQuery, missing: Ranges) -> np.ndarray:
    """Indices into a sorted array of open times (us) that the query selects, oldest first."""
    lo = 0 if query.start_us is None else int(np.searchsorted(opens_us, query.start_us, "left"))
    hi = len(opens_us) if query.end_us is None else int(np.searchsorted(opens_us, query.end_us, "right"))
    if lo >= hi:
        return np.empty(0, dtype=np.int64)
    index = np.arange(lo, hi)
    if missing:
        window = opens_us[lo:hi]
        keep = np.ones(len(window), dtype=bool)
        for start, end in missing:
            keep &= ~((window >= start * 1000) & (window < end * 1000))
        index = index[keep]
    return index[-query.limit :] if query.newest else index[: query.limit]
