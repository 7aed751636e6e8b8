"""Reads and writes of `trades` (aggregate trades) and of the candles built from them.

A load of one symbol's window (a UTC day) goes into a stage table, a twin of `trades`; ClickHouse checks
it there (ids contiguous, trade-id chain unbroken, every trade inside the window, the ids the exchange says
the window holds); only then are the stage's parts attached to `trades` and older versions of the window
deleted. So a bad file inserts nothing, and after a load a plain SELECT sees each trade once.

Archives are parsed by ClickHouse itself: the zip's deflate stream is re-wrapped as gzip without inflating
it (`zip_gzip`), and ClickHouse inflates and parses it (`file()` in embedded mode; streamed as a compressed
insert to a server). That keeps a day of 2 million trades at ClickHouse's own CSV speed.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from warehouse_assets.lib.binance.archive_format import agg_trades_layout
from warehouse_assets.lib.klines_store import next_version_ms
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA, DAY_MS, MINUTE_MS
from warehouse_assets.lib.warehouse.sql import delete_counted, load_sql, query_count, rebuild_finish
from warehouse_assets.lib.zip_gzip import zip_member_as_gzip

TABLE = "trades"
CANDLES_TABLE = "candles_1m"
STAGE_PREFIX = "_stage_trades_"
# ClickHouse types of the archive's CSV columns (prices as text: checked, then converted exactly).
_CSV_TYPES = {
    "agg_trade_id": "UInt64",
    "price": "String",
    "quantity": "String",
    "first_trade_id": "UInt64",
    "last_trade_id": "UInt64",
    "transact_time": "Int64",
    "is_buyer_maker": "Bool",
    "is_best_match": "Bool",
}


class RejectedTradesError(ValueError):
    """A load failed its checks in the stage; nothing of it reached `trades`. `reasons` says why."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("; ".join(self.reasons))


@dataclass(frozen=True)
class StageFacts:
    """What a staged load holds (see sql/trades/stage_facts.sql)."""

    row_count: int
    first_id: int
    last_id: int
    first_ts_us: int
    last_ts_us: int
    id_gaps: int
    first_id_gap: tuple[int, int]
    chain_breaks: int
    first_chain_break: tuple[int, int, int]
    time_reversals: int
    first_time_reversal_id: int
    bad_values: int
    first_bad_value_id: int
    outside_window: int
    first_outside_id: int
    foreign_rows: int

    def problems(self, expected_ids: tuple[int, int] | None, window: str) -> list[str]:
        """Every reason to refuse the load, each naming the trade ids concerned."""
        found: list[str] = []
        if self.id_gaps:
            previous, current = self.first_id_gap
            what = "repeated or out of order" if current <= previous else f"{current - previous - 1} missing"
            found.append(
                f"aggregate ids are not contiguous: {current} follows {previous} ({what}; "
                f"{self.id_gaps} such places)"
            )
        if self.chain_breaks:
            previous_last, first, agg_id = self.first_chain_break
            found.append(
                f"the trade-id chain is broken at aggregate id {agg_id}: first_trade_id {first} does not "
                f"follow the previous last_trade_id {previous_last} ({self.chain_breaks} such places)"
            )
        if self.time_reversals:
            found.append(f"transact times go backwards at aggregate id {self.first_time_reversal_id}")
        if self.bad_values:
            found.append(
                f"{self.bad_values} trades have a price or quantity <= 0 or first_trade_id > last_trade_id "
                f"(first: aggregate id {self.first_bad_value_id})"
            )
        if self.outside_window:
            found.append(
                f"{self.outside_window} trades lie outside {window} (first: aggregate id {self.first_outside_id})"
            )
        if self.foreign_rows:
            found.append(f"{self.foreign_rows} rows are of another exchange or symbol")
        if expected_ids is not None and not found:
            first, last = expected_ids
            if self.row_count == 0:
                found.append(f"no trades, but the exchange lists aggregate ids {first}..{last} in {window}")
            elif (self.first_id, self.last_id) != (first, last):
                found.append(
                    f"it holds aggregate ids {self.first_id}..{self.last_id} but the exchange lists "
                    f"{first}..{last} in {window}: the day is not covered (a truncated or cut file)"
                )
        return found


@dataclass(frozen=True)
class TradesWrite:
    inserted: int
    replaced_older: int  # rows of earlier loads that this load removed
    version_ms: int
    first_id: int | None
    last_id: int | None


@dataclass(frozen=True)
class CandlesBuild:
    built: int  # candles (minutes with trades) written
    replaced_older: int
    version_ms: int


def _window_params(exchange: str, symbol: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    if end_ms <= start_ms:
        raise ValueError(f"window [{start_ms}, {end_ms}) is empty")
    return {"exchange": exchange, "symbol": symbol, "start_ms": start_ms, "end_ms": end_ms}


def window_name(symbol: str, start_ms: int, end_ms: int) -> str:
    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")

    if start_ms % DAY_MS == 0 and end_ms - start_ms == DAY_MS:
        return f"{symbol} {iso(start_ms)[:10]} (UTC)"
    return f"{symbol} [{iso(start_ms)}, {iso(end_ms)}) UTC"


# ------------------------------------------------------------------------------------------ loads


def replace_window_from_csv(
    client: Client,
    database: str,
    *,
    embedded: bool,
    path: Path,
    exchange: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    expected_ids: tuple[int, int] | None,
    source: str = "archive",
) -> TradesWrite:
    """Make [start_ms, end_ms) of (exchange, symbol) hold exactly the trades of an aggTrades archive.

    `path` is a verified .zip as published (or its .csv). `expected_ids`: the first and last aggregate id
    the exchange lists in the window (REST), so a file cut short is refused; None skips that check.
    Raises `RejectedTradesError` (nothing written) when ClickHouse cannot parse the file or a check fails.
    """
    params = _window_params(exchange, symbol, start_ms, end_ms)
    version_ms = next_version_ms()
    with _stage(client, database) as stage:
        layout = agg_trades_layout(path)
        if layout is not None:
            names, has_header = layout
            try:
                _fill_stage_from_csv(
                    client,
                    database,
                    stage,
                    path,
                    names,
                    has_header,
                    embedded=embedded,
                    values={
                        "exchange": exchange,
                        "symbol": symbol,
                        "source": source,
                        "version_ms": version_ms,
                    },
                )
            except ClickHouseError as exc:
                raise RejectedTradesError([f"ClickHouse could not load it: {_first_line(exc)}"]) from None
        return _commit(client, database, stage, params, version_ms, expected_ids)


def replace_window_from_table(
    client: Client,
    database: str,
    *,
    table: pa.Table,
    exchange: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    expected_ids: tuple[int, int] | None = None,
    source: str = "rest",
) -> TradesWrite:
    """Like `replace_window_from_csv`, for trades already parsed (`records.AGG_TRADE_SCHEMA`, e.g. from REST)."""
    params = _window_params(exchange, symbol, start_ms, end_ms)
    if table.schema != AGG_TRADE_SCHEMA:
        raise ValueError(f"trades must have records.AGG_TRADE_SCHEMA, got {table.schema}")
    version_ms = next_version_ms()
    with _stage(client, database) as stage:
        if table.num_rows:
            n = table.num_rows
            rows = table.append_column("source", pa.array([source] * n, pa.string())).append_column(
                "ingested_at", pa.array([version_ms] * n, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
            )
            client.insert_arrow(f"{database}.{stage}", rows)
        return _commit(client, database, stage, params, version_ms, expected_ids)


def insert_missing(client: Client, database: str, *, table: pa.Table, source: str) -> int:
    """Insert the trades of `table` that `trades` does not hold yet (gap repair); return how many.

    Unlike a day replace, nothing is deleted: rows from other sources (the stream) stay as they are.
    """
    if table.schema != AGG_TRADE_SCHEMA:
        raise ValueError(f"trades must have records.AGG_TRADE_SCHEMA, got {table.schema}")
    if not table.num_rows:
        return 0
    version_ms = next_version_ms()
    n = table.num_rows
    rows = table.append_column("source", pa.array([source] * n, pa.string())).append_column(
        "ingested_at", pa.array([version_ms] * n, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    )
    with _stage(client, database) as stage:
        client.insert_arrow(f"{database}.{stage}", rows)
        before = query_count(client, "trades/count_all.sql", database, {})
        client.command(
            load_sql("trades/insert_missing_from_stage.sql").render(database=database, stage=stage)
        )
        return query_count(client, "trades/count_all.sql", database, {}) - before


@contextmanager
def _stage(client: Client, database: str) -> Iterator[str]:
    stage = f"{STAGE_PREFIX}{uuid.uuid4().hex[:16]}"
    client.command(load_sql("trades/stage_create.sql").render(database=database, stage=stage))
    try:
        yield stage
    finally:
        client.command(load_sql("trades/stage_drop.sql").render(database=database, stage=stage))


def _fill_stage_from_csv(
    client: Client,
    database: str,
    stage: str,
    path: Path,
    names: tuple[str, ...],
    has_header: bool,
    *,
    embedded: bool,
    values: dict[str, Any],
) -> None:
    # optimize_on_insert=0: a stage must keep a repeated row so the checks see it, not have the
    # ReplacingMergeTree collapse it silently while inserting (it is also ~15 % faster).
    settings: dict[str, Any] = {"optimize_on_insert": 0}
    if has_header:
        settings["input_format_csv_skip_first_lines"] = 1
    with tempfile.TemporaryDirectory(prefix="trades-load-", dir=path.parent) as scratch:
        if path.suffix.lower() == ".zip":
            csv_path, compression = zip_member_as_gzip(path, Path(scratch))
        else:
            csv_path, compression = path, "none"
        if embedded:  # ClickHouse reads (and inflates) the file itself
            structure = ", ".join(f"{name} {_CSV_TYPES[name]}" for name in names)
            client.command(
                load_sql("trades/stage_from_file.sql").render(database=database, stage=stage),
                parameters={
                    **values,
                    "path": str(csv_path),
                    "structure": structure,
                    "compression": compression,
                },
                settings=settings,
            )
            return
        # A server cannot read our files: stream the (still compressed) CSV into a raw table there,
        # then check and convert it exactly as stage_from_file.sql does.
        raw = f"{stage}_raw"
        client.command(load_sql("trades/stage_raw_create.sql").render(database=database, raw=raw))
        try:
            with csv_path.open("rb") as stream:
                client.raw_insert(
                    f"{database}.{raw}",
                    column_names=list(names),
                    insert_block=stream,
                    settings=settings,
                    fmt="CSV",
                    compression=None if compression == "none" else compression,
                )
            sql = load_sql("trades/stage_from_raw.sql").render(database=database, stage=stage, raw=raw)
            client.command(sql, parameters=values)
        finally:
            client.command(load_sql("trades/stage_drop.sql").render(database=database, stage=raw))


def _commit(
    client: Client,
    database: str,
    stage: str,
    params: dict[str, Any],
    version_ms: int,
    expected_ids: tuple[int, int] | None,
) -> TradesWrite:
    facts = stage_facts(client, database, stage, params)
    window = window_name(params["symbol"], params["start_ms"], params["end_ms"])
    problems = facts.problems(expected_ids, window)
    if problems:
        raise RejectedTradesError(problems)
    if facts.row_count:
        partitions = client.query(
            load_sql("trades/stage_partitions.sql").text, parameters={"database": database, "table": stage}
        ).result_rows
        attach = load_sql("trades/attach_stage.sql").render(database=database, stage=stage)
        for (partition_id,) in partitions:
            client.command(attach, parameters={"partition_id": partition_id})
    versioned = {**params, "version_ms": version_ms}
    older = delete_counted(
        client, "trades/count_older_versions.sql", "trades/delete_older_versions.sql", database, versioned
    )
    return TradesWrite(
        inserted=facts.row_count,
        replaced_older=older,
        version_ms=version_ms,
        first_id=facts.first_id if facts.row_count else None,
        last_id=facts.last_id if facts.row_count else None,
    )


def stage_facts(client: Client, database: str, stage: str, params: dict[str, Any]) -> StageFacts:
    sql = load_sql("trades/stage_facts.sql").render(database=database, stage=stage)
    row = client.query(sql, parameters=params).result_rows[0]
    (count, first, last, first_ts, last_ts, gaps, gap, breaks, brk, reversals, reversal, bad, bad_id, out, out_id, foreign) = row  # fmt: skip
    return StageFacts(
        int(count), int(first), int(last), int(first_ts), int(last_ts),
        int(gaps), (int(gap[0]), int(gap[1])), int(breaks), (int(brk[0]), int(brk[1]), int(brk[2])),
        int(reversals), int(reversal), int(bad), int(bad_id), int(out), int(out_id), int(foreign),
    )  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def drop_stale_stages(client: Client, database: str, older_than_hours: float = 6.0) -> list[str]:
    """Drop stage tables a crashed load left behind (their loads never reached `trades`)."""
    rows = client.query(
        load_sql("trades/stale_stages.sql").text,
        parameters={"database": database, "prefix": STAGE_PREFIX, "hours": older_than_hours},
    ).result_rows
    dropped = []
    for (name,) in rows:
        client.command(load_sql("trades/stage_drop.sql").render(database=database, stage=name))
        dropped.append(str(name))
    return dropped


# ---------------------------------------------------------------------------------------- candles


def rebuild_candles(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> CandlesBuild:
    """Make the 1m candles of [start_ms, end_ms) (whole minutes) the aggregation of `trades` as it is now."""
    if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
        raise ValueError(f"candle window [{start_ms}, {end_ms}) must be whole minutes")
    params = {**_window_params(exchange, symbol, start_ms, end_ms), "version_ms": next_version_ms()}
    client.command(
        load_sql("candles/build.sql").render(database=database), parameters={**params, "only_missing": 0}
    )
    built, older = rebuild_finish(client, database, CANDLES_TABLE, params)
    return CandlesBuild(built=built, replaced_older=older, version_ms=params["version_ms"])


def build_missing_candles(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> int:
    """Build the candles of the minutes of [start_ms, end_ms) that have none yet; return how many.

    For the stream's closed minutes: each is built once, when it has closed, with no DELETE (a rebuild's
    cost). A minute whose trades change later (gap repair, a day re-load) is rebuilt by `rebuild_candles`.
    """
    if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
        raise ValueError(f"candle window [{start_ms}, {end_ms}) must be whole minutes")
    params = {**_window_params(exchange, symbol, start_ms, end_ms), "version_ms": next_version_ms()}
    client.command(
        load_sql("candles/build.sql").render(database=database), parameters={**params, "only_missing": 1}
    )
    return query_count(client, "rebuild/count_builds.sql", database, params, table=CANDLES_TABLE)


# ------------------------------------------------------------------------------------ read backs


@dataclass(frozen=True)
class TradeDayFacts:
    """One UTC day of one symbol in `trades`, read back with a plain SELECT (sql/trades/day_facts.sql)."""

    day: str
    row_count: int
    distinct_ids: int
    first_id: int | None
    last_id: int | None
    id_gaps: int
    missing_ids: int
    first_id_gaps: tuple[tuple[int, int], ...]  # (previous id, next id) of the first gaps
    chain_breaks: int
    first_chain_breaks: tuple[tuple[int, int], ...]  # (previous last_trade_id, first_trade_id)
    trades: int  # individual trades: sum(last - first + 1)
    volume: Decimal
    from_archive: int
    from_rest: int
    from_stream: int

    @property
    def duplicate_rows(self) -> int:
        return self.row_count - self.distinct_ids


def day_facts(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> list[TradeDayFacts]:
    """Facts of every UTC day of [start_ms, end_ms) (day-aligned); a day without trades has zeros."""
    if start_ms % DAY_MS or end_ms % DAY_MS:
        raise ValueError(f"window [{start_ms}, {end_ms}) must be whole UTC days")
    params = _window_params(exchange, symbol, start_ms, end_ms)
    sql = load_sql("trades/day_facts.sql").render(database=database)
    by_day = {str(row[0]): row for row in client.query(sql, parameters=params).result_rows}
    out = []
    for day_ms in range(start_ms, end_ms, DAY_MS):
        day = datetime.fromtimestamp(day_ms / 1000, tz=UTC).date().isoformat()
        row = by_day.get(day)
        if row is None:
            out.append(TradeDayFacts(day, 0, 0, None, None, 0, 0, (), 0, (), 0, Decimal(0), 0, 0, 0))
            continue
        (_, count, distinct, first, last, gaps, missing, gap_list, breaks, break_list, trades, volume, a, r, s) = row  # fmt: skip
        out.append(
            TradeDayFacts(
                day,
                int(count),
                int(distinct),
                int(first),
                int(last),
                int(gaps),
                int(missing),
                tuple((int(p), int(n)) for p, n in gap_list),
                int(breaks),
                tuple((int(p), int(n)) for p, n in break_list),
                int(trades),
                Decimal(volume),
                int(a),
                int(r),
                int(s),
            )  # fmt: skip
        )
    return out


@dataclass(frozen=True)
class MinuteMismatch:
    """A minute where the candle built from trades and the exchange's kline disagree."""

    open_ms: int
    kline_trades: int
    candle_trades: int
    kline_volume: Decimal
    candle_volume: Decimal
    kline_quote_volume: Decimal
    candle_quote_volume: Decimal
    has_kline: bool


@dataclass(frozen=True)
class Reconciliation:
    kline_minutes_by_day: dict[str, int]  # days of the window that have klines (the ones compared)
    mismatches: list[MinuteMismatch]  # only in days that have klines


def reconcile_with_klines(
    client: Client, database: str, *, exchange: str, symbol: str, start_ms: int, end_ms: int
) -> Reconciliation:
    """Compare candles_1m with klines_1m minute by minute (trades, volume, quote volume, exactly)."""
    params = _window_params(exchange, symbol, start_ms, end_ms)
    days = {
        str(day): int(minutes)
        for day, minutes in client.query(
            load_sql("candles/kline_days.sql").render(database=database), parameters=params
        ).result_rows
    }
    rows = client.query(
        load_sql("candles/reconcile_klines.sql").render(database=database), parameters=params
    ).result_rows
    mismatches = [
        MinuteMismatch(int(t), int(kt), int(ct), Decimal(kv), Decimal(cv), Decimal(kq), Decimal(cq), bool(h))
        for t, kt, ct, kv, cv, kq, cq, h in rows
        if datetime.fromtimestamp(int(t) / 1000, tz=UTC).date().isoformat() in days
    ]
    return Reconciliation(days, mismatches)
