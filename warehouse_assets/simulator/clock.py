"""The simulator's market clock: the wall clock plus an offset, one for REST, archives and streams.

The offset (--clock-offset-ms, POST /_sim/clock) lets a test put "now" a few seconds before a
minute boundary, so a closed 1m kline arrives in seconds instead of up to a minute; REST klines,
aggTrades, serverTime, archive publication and the WebSocket streams all read this clock, so they
stay consistent with each other. Request-weight windows keep the real wall clock.
"""

from __future__ import annotations

import time

_offset_us = 0


def now_us() -> int:
    """Simulated epoch time in microseconds."""
    return time.time_ns() // 1000 + _offset_us


def now_ms() -> int:
    """Simulated epoch time in milliseconds."""
    return now_us() // 1000


def offset_ms() -> int:
    return _offset_us // 1000


def set_offset_ms(offset: int) -> None:
    """Shift the simulated clock by `offset` ms from the wall clock (0 = the wall clock)."""
    global _offset_us
    _offset_us = int(offset) * 1000
