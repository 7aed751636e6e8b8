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
    clock_offset_ms: int = 0  # the market clock runs this far ahead of the wall clock (clock.py)
    ws_ping_interval: float = 20.0
    ws_pong_timeout: float = 60.0
    ws_lifetime_seconds: float = 86_400.0
    ws_shutdown_notice_seconds: float = 600.0
    ws_agg_trade_rate: float = 0.0  # 0 = the natural synthetic trades
    replay: tuple[Path, ...] = ()
    replay_speed: float = 1.0


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


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _files(text: str) -> tuple[Path, ...]:
    paths = tuple(Path(part.strip()) for part in text.split(",") if part.strip())
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        raise argparse.ArgumentTypeError(
            f"--replay needs existing capture files FILE[,FILE...]; not found: {missing}"
        )
    return paths


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m warehouse_assets.simulator",
        description=(
            "Offline Binance spot exchange simulator for tests, benchmarks and the demo: REST market data, "
            "data.binance.vision archive files and WebSocket streams (/ws/<stream>, /stream?streams=a/b: "
            "<symbol>@aggTrade, @trade, @kline_1m live from the synthetic market, or a recorded capture with "
            "--replay). Control API under /_sim (faults, stats, reset, ws, clock)."
        ),
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
        "--clock-offset-ms", type=int, default=0,
        help="run the market clock this many ms ahead of the wall clock (REST, archives and streams)",
    )  # fmt: skip
    ws = p.add_argument_group("WebSocket streams")
    ws.add_argument(
        "--ws-ping-interval", type=_seconds, default=20.0, help="server ping every N s (default 20)"
    )
    ws.add_argument(
        "--ws-pong-timeout", type=_seconds, default=60.0,
        help="close 1008 when a ping's pong has not come within N s (default 60)",
    )  # fmt: skip
    ws.add_argument(
        "--ws-lifetime-seconds", type=_seconds, default=86_400.0,
        help="close 1001 this long after a connection opened (default 86400 = 24 h)",
    )  # fmt: skip
    ws.add_argument(
        "--ws-shutdown-notice-seconds", type=_non_negative, default=600.0,
        help="send serverShutdown this long before the lifetime ends (default 600; 0 = none)",
    )  # fmt: skip
    ws.add_argument(
        "--ws-agg-trade-rate", type=_non_negative, default=0.0,
        help="push N synthetic aggTrade messages/s per symbol instead of the natural trades (benchmarks; "
        "REST and archives do not hold them; default 0 = natural)",
    )  # fmt: skip
    ws.add_argument(
        "--replay", type=_files, default=(),
        help="play recorded combined-stream captures ('<ns> {\"stream\":...}' lines, gzip or plain) to "
        "subscribers, files one after another; replaces the synthetic streams",
    )  # fmt: skip
    ws.add_argument(
        "--replay-speed", type=_non_negative, default=1.0,
        help="replay time scale: 2 = twice as fast, 0 = as fast as the client takes it (default 1)",
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
        clock_offset_ms=args.clock_offset_ms,
        ws_ping_interval=args.ws_ping_interval,
        ws_pong_timeout=args.ws_pong_timeout,
        ws_lifetime_seconds=args.ws_lifetime_seconds,
        ws_shutdown_notice_seconds=args.ws_shutdown_notice_seconds,
        ws_agg_trade_rate=args.ws_agg_trade_rate,
        replay=args.replay,
        replay_speed=args.replay_speed,
    )
