"""Flush raw Binance combined-stream frames (aggTrade, trade, kline_1m) into the warehouse, ClickHouse parsing them.

Python does no per-message parsing: a block of frames goes to ClickHouse as lines of text
(`LineAsString`), is parsed and checked there once (sql/stream/parsed_create.sql), and then:
- refused frames go to `dead_letters` verbatim with their reason;
- valid aggregate trades that `trades` does not hold yet are inserted (source 'stream');
- valid individual trades (`@trade`) that `individual_trades` does not hold yet are inserted;
- closed klines for minutes `klines_1m` does not hold yet are inserted (source 'stream');
- the candles of the minutes the trades closed are built from `trades`, once each.

Idempotent by construction: flushing the same frames twice (a replayed spool block, a repeated message, the
overlap of a connection rotation) inserts nothing the second time, so no dedup token is needed and a
plain SELECT stays exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from clickhouse_connect.driver.client import Client

from warehouse_assets.lib import trades_store
from warehouse_assets.lib.dead_letters import DeadLetter, record_dead_letters
from warehouse_assets.lib.records import DAY_MS, MINUTE_MS
from warehouse_assets.lib.warehouse.sql import load_sql

EXCHANGE = "binance"


@dataclass
class FlushResult:
    frames: int = 0
    agg_trades: int = 0  # valid aggregate trade messages in the block
    trades_inserted: int = 0  # of them, new to the warehouse
    individual_trades: int = 0  # valid individual trade messages (@trade)
    individual_trades_inserted: int = 0
    closed_klines: int = 0
    klines_inserted: int = 0
    dead_letters: int = 0
    control: int = 0  # subscription replies, serverShutdown: not data, not refused
    candles_built: int = 0  # closed minutes whose candle this flush built
    newest_trade_us: int | None = None  # for event-time lag
    oldest_trade_us: int | None = None
    symbols: set[str] = field(default_factory=set)

    def add(self, other: FlushResult) -> None:
        for f in fields(self):
            if f.type == "int":  # every count adds up
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        if other.newest_trade_us is not None:
            self.newest_trade_us = max(self.newest_trade_us or 0, other.newest_trade_us)
        if other.oldest_trade_us is not None:
            self.oldest_trade_us = min(self.oldest_trade_us or other.oldest_trade_us, other.oldest_trade_us)
        self.symbols |= other.symbols


def flush_frames(client: Client, database: str, frames: Sequence[bytes]) -> FlushResult:
    """Parse, check and write one block of raw frames (see the module docstring)."""
    joined, count, broken = join_frames(frames)
    return flush_joined(client, database, joined, count, broken)


def join_frames(frames: Sequence[bytes]) -> tuple[bytes, int, list[bytes]]:
    """The frames as lines for ClickHouse: (joined, how many, frames set apart because they hold a line break)."""
    joined = b"\n".join(frames)
    if joined.count(b"\n") == max(len(frames) - 1, 0) and b"" not in frames:  # the usual case: C-speed scans
        return joined, len(frames), []
    kept = [f for f in frames if f and b"\n" not in f and b"\r" not in f]
    broken = [f for f in frames if not f or b"\n" in f or b"\r" in f]
    return b"\n".join(kept), len(kept), broken


def flush_joined(
    client: Client, database: str, joined: bytes, count: int, broken: Sequence[bytes] = ()
) -> FlushResult:
    """`flush_frames` of frames already joined by `join_frames` (what a writer process receives)."""
    result = FlushResult(frames=count + len(broken))
    if broken:  # a frame with a line break would split into two lines: refused as it is
        record_dead_letters(client, database, [_line_break_letter(f) for f in broken])
        result.dead_letters += len(broken)
    if not count:
        return result

    suffix = uuid.uuid4().hex[:16]
    raw, parsed = f"_stream_raw_{suffix}", f"_stream_parsed_{suffix}"
    names = {"database": database, "raw": raw, "parsed": parsed}
    client.command(load_sql("stream/raw_create.sql").render(database=database, raw=raw))
    try:
        client.raw_insert(f"{database}.{raw}", column_names=["raw"], insert_block=joined, fmt="LineAsString")
        client.command(load_sql("stream/parsed_create.sql").render(**names))
        client.command(load_sql("stream/dead_letters.sql").render(database=database, parsed=parsed))
        before = _counts(client, database)
        client.command(load_sql("stream/insert_trades.sql").render(database=database, parsed=parsed))
        client.command(load_sql("stream/insert_klines.sql").render(database=database, parsed=parsed))
        client.command(
            load_sql("stream/insert_individual_trades.sql").render(database=database, parsed=parsed)
        )
        after = _counts(client, database)
        result.trades_inserted = after[0] - before[0]
        result.klines_inserted = after[1] - before[1]
        result.individual_trades_inserted = after[2] - before[2]
        summary = client.query(load_sql("stream/flush_summary.sql").render(database=database, parsed=parsed))
        spans: dict[str, tuple[int, int, int]] = {}  # symbol -> first and last trade time (µs), first id
        for kind, symbol, messages, refused, first_us, last_us, closed, first_id in summary.result_rows:
            result.dead_letters += int(refused)
            if kind == "control":
                result.control += int(messages)
            elif kind in ("agg_trade", "trade"):
                valid = int(messages) - int(refused)
                if kind == "agg_trade":
                    result.agg_trades += valid
                    if valid:
                        spans[str(symbol)] = (int(first_us), int(last_us), int(first_id))
                else:
                    result.individual_trades += valid
                if valid:
                    result.symbols.add(str(symbol))
                    result.newest_trade_us = max(result.newest_trade_us or 0, int(last_us))
                    result.oldest_trade_us = min(result.oldest_trade_us or int(first_us), int(first_us))
            elif kind == "kline":
                result.closed_klines += int(closed)
        for symbol, (first_us, last_us, first_id) in spans.items():
            result.candles_built += _build_closed_candles(
                client, database, symbol, first_us, last_us, first_id
            )
    finally:
        for table in (raw, parsed):
            client.command(load_sql("trades/stage_drop.sql").render(database=database, stage=table))
    return result


def _build_closed_candles(
    client: Client, database: str, symbol: str, first_us: int, last_us: int, first_id: int
) -> int:
    """Build the candles of the minutes this flush closed: from the minute of the trade before the flush's
    first (it may have been open at the previous flush) up to, not including, the minute of its newest
    trade, which may still get trades. Each minute is built once (no DELETE on the hot path)."""
    start = first_us // 1000 // MINUTE_MS * MINUTE_MS
    if first_id > 0:
        rows = client.query(
            load_sql("stream/previous_trade_time.sql").render(database=database),
            parameters={"symbol": symbol, "trade_id": first_id - 1},
        ).result_rows
        if rows and first_us - int(rows[0][0]) < DAY_MS * 1000:  # a day back at most
            start = min(start, int(rows[0][0]) // 1000 // MINUTE_MS * MINUTE_MS)
    end = last_us // 1000 // MINUTE_MS * MINUTE_MS
    if end <= start:
        return 0
    return trades_store.build_missing_candles(
        client, database, exchange=EXCHANGE, symbol=symbol, start_ms=start, end_ms=end
    )


def _counts(client: Client, database: str) -> tuple[int, int, int]:
    # count() is answered from part metadata; lightweight-deleted rows are excluded by ClickHouse.
    row = client.query(load_sql("stream/table_counts.sql").render(database=database)).result_rows[0]
    return int(row[0]), int(row[1]), int(row[2])


def _line_break_letter(frame: bytes) -> DeadLetter:
    return DeadLetter(
        exchange=EXCHANGE,
        source="stream",
        kind="invalid",
        symbol="",
        reason="the frame is empty or contains a line break: not a message Binance sends",
        payload=frame.decode("utf-8", errors="replace"),
    )
