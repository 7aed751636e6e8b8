"""Binance spot REST protocol constants: intervals, error bodies, rate-limit interval names.

Everything here is written from the Binance spot API documentation (rest-api.md, errors.md,
enums.md). Nothing is shared with the warehouse's client code on purpose: a client bug must not
be able to hide behind a matching simulator bug.
"""

from __future__ import annotations

from typing import Any

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# Kline intervals Binance accepts (case-sensitive), with their length in ms where it is fixed.
# 1M (one calendar month) has no fixed length.
INTERVAL_MS: dict[str, int | None] = {
    "1s": 1_000,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": None,
}

# Timestamps above this are microseconds (1e14 ms is the year 5138; 1e14 us is 1973).
MICROS_THRESHOLD = 100_000_000_000_000

LEGAL_DIGITS = "^[0-9]{1,20}$"


def error_body(code: int, msg: str) -> dict[str, Any]:
    """The Binance error JSON: {"code": <negative int>, "msg": "..."}."""
    return {"code": code, "msg": msg}


def mandatory_missing(name: str) -> dict[str, Any]:
    return error_body(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_chars(name: str, legal: str = LEGAL_DIGITS) -> dict[str, Any]:
    return error_body(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


INVALID_SYMBOL = error_body(-1121, "Invalid symbol.")
INVALID_INTERVAL = error_body(-1120, "Invalid interval.")
INVALID_PARAMETER = error_body(-1130, "Invalid data sent for a parameter.")
INTERNAL_ERROR = error_body(-1001, "Internal error; unable to process your request. Please try again.")


def rate_limit_interval(window_seconds: int) -> tuple[str, int]:
    """(interval, intervalNum) as Binance writes a window: 60 s -> ("MINUTE", 1), 2 s -> ("SECOND", 2)."""
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    for name, size in (("DAY", 86_400), ("HOUR", 3_600), ("MINUTE", 60)):
        if window_seconds % size == 0:
            return name, window_seconds // size
    return "SECOND", window_seconds


def used_weight_header(window_seconds: int) -> str:
    """The used-weight header name: X-MBX-USED-WEIGHT-1M for 60 s, X-MBX-USED-WEIGHT-2S for 2 s."""
    interval, num = rate_limit_interval(window_seconds)
    return f"X-MBX-USED-WEIGHT-{num}{interval[0]}"


def too_much_weight(limit: int, window_seconds: int) -> dict[str, Any]:
    interval, num = rate_limit_interval(window_seconds)
    return error_body(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per {num} {interval}. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    )


def banned(until_ms: int) -> dict[str, Any]:
    return error_body(
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
    )
