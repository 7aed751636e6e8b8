"""Settings read from the environment, in one place. Secrets are never logged (see `redact_url`)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The repository root: sql/ and the default embedded warehouse live there.
PROJECT_DIR = Path(__file__).resolve().parents[2]

DEFAULTS = {
    "WAREHOUSE_URL": "chdb://.data/warehouse",
    "WAREHOUSE_LOCK_TIMEOUT": "120",
    "BINANCE_API_URL": "https://api.binance.com",
    "BINANCE_WS_URL": "wss://stream.binance.com:9443",
    "WAREHOUSE_SYMBOLS": "",
    "KLINES_START_DATE": "2017-08-17",
    "KLINES_ARCHIVE": "true",
    "KLINES_FRESHNESS_HOURS": "36",
    "WAREHOUSE_SCHEDULES": "false",
    "STREAM_REPAIR_WINDOW_HOURS": "48",
    "STREAM_WINDOW_SECONDS": "3600",
    "STREAM_SPOOL_DIR": ".data/spool/binance",
    "STREAM_SPOOL_MAX_BYTES": str(2 << 30),
    "WAREHOUSE_STREAM": "false",
}


def env(name: str) -> str:
    return os.environ.get(name, DEFAULTS.get(name, ""))


def warehouse_url() -> str:
    return env("WAREHOUSE_URL")


def warehouse_lock_timeout() -> float:
    raw = env("WAREHOUSE_LOCK_TIMEOUT")
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"WAREHOUSE_LOCK_TIMEOUT={raw!r} is not a number of seconds") from exc


def binance_api_url() -> str:
    return env("BINANCE_API_URL").rstrip("/")


def binance_ws_url() -> str:
    """BINANCE_WS_URL: the market-stream host (the client appends /stream?streams=...)."""
    return env("BINANCE_WS_URL").rstrip("/")


def configured_symbols() -> list[str]:
    """Symbols from WAREHOUSE_SYMBOLS (comma-separated), upper-cased, order kept, duplicates dropped."""
    seen: dict[str, None] = {}
    for part in env("WAREHOUSE_SYMBOLS").split(","):
        symbol = part.strip().upper()
        if symbol:
            seen[symbol] = None
    return list(seen)


def klines_archive_enabled() -> bool:
    """KLINES_ARCHIVE: take whole published days from data.binance.vision before REST (default true)."""
    return _flag("KLINES_ARCHIVE")


def _flag(name: str) -> bool:
    raw = env(name).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} must be true or false")


def schedules_enabled() -> bool:
    """WAREHOUSE_SCHEDULES: start the nightly schedules running (default false; the demo sets true)."""
    return _flag("WAREHOUSE_SCHEDULES")


def klines_freshness_hours() -> float:
    """KLINES_FRESHNESS_HOURS: how old the newest complete day of a symbol may be (default 36)."""
    return _positive("KLINES_FRESHNESS_HOURS")


def stream_repair_window_hours() -> float:
    """STREAM_REPAIR_WINDOW_HOURS: how far back the gap-repair sensor looks for holes (default 48)."""
    hours = _positive("STREAM_REPAIR_WINDOW_HOURS")
    if hours > 24 * 30:
        raise ValueError(
            f"STREAM_REPAIR_WINDOW_HOURS={hours:g} is more than 30 days; scans that long belong to a backfill"
        )
    return hours


def stream_enabled() -> bool:
    """WAREHOUSE_STREAM: start the stream supervisor sensor running (default false)."""
    return _flag("WAREHOUSE_STREAM")


def stream_window_seconds() -> float:
    """STREAM_WINDOW_SECONDS: how long one streaming run receives before it flushes and ends (default 3600)."""
    return _positive("STREAM_WINDOW_SECONDS")


def stream_spool_max_bytes() -> int:
    """STREAM_SPOOL_MAX_BYTES: the spool's size cap (default 2 GiB); reaching it fails the run loudly."""
    return int(_positive("STREAM_SPOOL_MAX_BYTES"))


def stream_spool_dir() -> Path:
    """STREAM_SPOOL_DIR: where received frames are spooled (relative paths are under the project)."""
    path = Path(env("STREAM_SPOOL_DIR"))
    return path if path.is_absolute() else PROJECT_DIR / path


def _positive(name: str) -> float:
    raw = env(name)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive number, like {DEFAULTS[name]}")
    return value


def klines_start_date() -> date:
    raw = env("KLINES_START_DATE")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"KLINES_START_DATE={raw!r} is not a date like 2017-08-17") from exc


def redact_url(url: str) -> str:
    """The URL with any password replaced by '***', for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, parts.fragment))
