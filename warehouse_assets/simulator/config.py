"""Simulator settings and the command line that sets them (python -m warehouse_assets.simulator)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from warehouse_assets.simulator.symbols import DEFAULT_SYMBOLS


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator is started with."""

    host: str = "127.0.0.1"
    port: int = 8700
    archive_dir: Path | None = None
    seed: int = 42
    symbols: tuple[str, ...] = field(default=DEFAULT_SYMBOLS)
    weight_limit: int = 6000
    window_seconds: int = 60
    ban_base_seconds: int = 120
    error_rate: float = 0.0
    delay_ms: int = 0
    log_level: str = "warning"
    archive_delay_hours: float = 32.0  # a daily archive file appears this long after its day starts
    trades_per_day: int = 100_000  # typical synthetic aggregate trades per symbol and day


def _symbols(text: str) -> tuple[str, ...]:
    symbols = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    if not symbols:
        raise argparse.ArgumentTypeError("--symbols needs at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return symbols


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _trades_per_day(text: str) -> int:
    value = int(text)
    if not 10_000 <= value <= 50_000_000:
        raise argparse.ArgumentTypeError(f"--trades-per-day must be in 10000..50000000, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m warehouse_assets.simulator",
        description="Offline Binance spot exchange simulator (REST), for tests, benchmarks and the demo.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8700, help="port to bind; 0 picks a free one (default 8700)")
    p.add_argument("--archive-dir", type=Path, help="serve real data.binance.vision kline files from here")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic market and of error_rate")
    p.add_argument(
        "--symbols", type=_symbols, default=DEFAULT_SYMBOLS, help="listed symbols (synthetic mode)"
    )
    p.add_argument("--weight-limit", type=_positive, default=6000, help="REQUEST_WEIGHT per window per IP")
    p.add_argument(
        "--window-seconds", type=_positive, default=60, help="weight window length (60 = 1 MINUTE)"
    )
    p.add_argument(
        "--ban-base-seconds", type=_positive, default=120, help="first 418 ban; doubles per offence"
    )
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503 (0..1)")
    p.add_argument("--delay-ms", type=int, default=0, help="sleep before answering each Binance request")
    p.add_argument(
        "--archive-delay-hours", type=float, default=32.0,
        help="data.binance.vision daily files appear this many hours after the day starts (default 32)",
    )  # fmt: skip
    p.add_argument(
        "--trades-per-day", type=_trades_per_day, default=100_000,
        help="typical synthetic aggregate trades per symbol and day (default 100000, min 10000)",
    )  # fmt: skip
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> SimulatorConfig:
    args = parser().parse_args(argv)
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        archive_dir=args.archive_dir,
        seed=args.seed,
        symbols=tuple(args.symbols),
        weight_limit=args.weight_limit,
        window_seconds=args.window_seconds,
        ban_base_seconds=args.ban_base_seconds,
        error_rate=args.error_rate,
        delay_ms=args.delay_ms,
        log_level=args.log_level,
        archive_delay_hours=args.archive_delay_hours,
        trades_per_day=args.trades_per_day,
    )
