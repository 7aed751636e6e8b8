"""GET /api/v3/aggTrades (weight 4): request checks, which aggregate trades are selected, JSON rows.

Binance semantics (rest-api.md): `fromId` returns trades from that agg id on (inclusive);
`startTime`/`endTime` (inclusive, ms or us by magnitude) the oldest `limit` trades of the window;
only `endTime` the newest up to it; none of them the most recent trades. fromId together with a
time bound is refused with -1128 (inferred from Binance's answer to that combination). Rows are
ordered by agg id, times in ms unless X-MBX-TIME-UNIT: MICROSECOND. Trades come from the synthetic
TradeGenerator (one chunk per UTC day), or in archive mode from the aggTrades files found under
--archive-dir (spot: 8 columns, no header, True/False; futures: header, 7 columns, true/false),
whose prices and quantities are served as the exact strings of the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.archive import find_published, read_lines
from warehouse_assets.simulator.gate import binance_endpoint, json_response
from warehouse_assets.simulator.klines import to_micros
from warehouse_assets.simulator.protocol import (
    INVALID_PARAMETER,
    INVALID_SYMBOL,
    error_body,
    illegal_chars,
    mandatory_missing,
)
from warehouse_assets.simulator.rest import ALL_METHODS, SYMBOL_LEGAL, SYMBOL_RE, BadRequest, wants_micros
from warehouse_assets.simulator.state import SimulatorState
from warehouse_assets.simulator.trades import DAY_US, TradeGenerator

WEIGHT = 4
DIGITS = re.compile(r"^[0-9]{1,20}$")
ROW = '{"a":%d,"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s,"M":%s}'


@dataclass(frozen=True)
class AggQuery:
    """A validated aggTrades request; times in microseconds."""

    symbol: str
    from_id: int | None
    start_us: int | None
    end_us: int | None
    limit: int
    micro: bool


@dataclass(frozen=True)
class TradeTable:
    """Aggregate trades sorted by agg id; prices/quantities as strings, or e8 integers."""

    agg_ids: np.ndarray
    first_ids: np.ndarray
    last_ids: np.ndarray
    times_us: np.ndarray
    buyer_maker: np.ndarray
    best_match: np.ndarray
    prices: np.ndarray | list[str]
    qtys: np.ndarray | list[str]

    def rows(self, index: np.ndarray, micro: bool) -> list[str]:
        times = self.times_us[index] if micro else self.times_us[index] // 1000
        return [
            ROW % (a, _text(self.prices, i), _text(self.qtys, i), f, last, t, _bool(m), _bool(b))
            for i, a, f, last, t, m, b in zip(
                index.tolist(), self.agg_ids[index].tolist(), self.first_ids[index].tolist(),
                self.last_ids[index].tolist(), times.tolist(), self.buyer_maker[index].tolist(),
                self.best_match[index].tolist(), strict=True,
            )
        ]  # fmt: skip


def _text(values: np.ndarray | list[str], i: int) -> str:
    if isinstance(values, list):
        return values[i]
    whole, fraction = divmod(int(values[i]), 10**8)
    return f"{whole}.{fraction:08d}"


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


class TradeChunks(Protocol):
    """Trades of a symbol in consecutive chunks (days), each sorted by agg id and time."""

    def span(self, symbol: str, now_us: int) -> tuple[int, int] | None: ...
    def chunk(self, symbol: str, index: int) -> TradeTable: ...
    def chunk_of_id(self, symbol: str, agg_id: int) -> int: ...
    def chunk_of_time(self, symbol: str, time_us: int) -> int: ...


class SyntheticChunks:
    """The synthetic market's trades, one chunk per UTC day (chunk index = epoch day)."""

    def __init__(self, generator: TradeGenerator) -> None:
        self.generator = generator

    def span(self, symbol: str, now_us: int) -> tuple[int, int] | None:
        return self.generator.first_day(symbol), now_us // DAY_US

    def chunk(self, symbol: str, index: int) -> TradeTable:
        day = self.generator.day(symbol, index)
        return TradeTable(day.agg_ids, day.first_ids, day.last_ids, day.times_us, day.buyer_maker,
                          np.ones(len(day.agg_ids), dtype=bool), day.prices_e8, day.qtys_e8)  # fmt: skip

    def chunk_of_id(self, symbol: str, agg_id: int) -> int:
        return self.generator.day_of_agg_id(symbol, agg_id)

    def chunk_of_time(self, symbol: str, time_us: int) -> int:
        return time_us // DAY_US


class ArchiveChunks:
    """The aggTrades files of an archive directory, one chunk per symbol."""

    def __init__(self, root: Path) -> None:
        rows: dict[str, dict[int, list[str]]] = {}
        for name, found in find_published(root).items():
            if "-aggTrades-" not in name:
                continue
            table = rows.setdefault(name.split("-aggTrades-")[0], {})
            for line in read_lines(found.path):
                fields = line.split(",")
                if len(fields) < 7 or not fields[0].isdigit():
                    continue  # the header of a futures file, or a blank line
                table.setdefault(int(fields[0]), fields)
        self.tables = {symbol: _table(table) for symbol, table in rows.items()}

    def span(self, symbol: str, now_us: int) -> tuple[int, int] | None:
        return (0, 0) if symbol in self.tables else None

    def chunk(self, symbol: str, index: int) -> TradeTable:
        return self.tables[symbol]

    def chunk_of_id(self, symbol: str, agg_id: int) -> int:
        return 0

    def chunk_of_time(self, symbol: str, time_us: int) -> int:
        return 0


def _table(rows: dict[int, list[str]]) -> TradeTable:
    ordered = [rows[a] for a in sorted(rows)]

    def ints(column: int) -> np.ndarray:
        return np.array([int(r[column]) for r in ordered], dtype=np.int64)

    times = ints(5)
    times = np.where(times >= 100_000_000_000_000, times, times * 1000)
    maker = np.array([r[6].strip().lower() == "true" for r in ordered], dtype=bool)
    best = np.array([len(r) < 8 or r[7].strip().lower() == "true" for r in ordered], dtype=bool)
    return TradeTable(ints(0), ints(3), ints(4), times, maker, best, [r[1] for r in ordered],
                      [r[2] for r in ordered])  # fmt: skip


def select(chunks: TradeChunks, query: AggQuery, now_us: int) -> list[str]:
    """The JSON rows a query selects (see the module docstring), oldest first."""
    span = chunks.span(query.symbol, now_us)
    if span is None:
        return []
    lo, hi = span
    end = now_us if query.end_us is None else min(query.end_us, now_us)
    rows: list[str] = []
    if query.from_id is None and query.start_us is None:  # the newest trades up to end
        index = min(max(chunks.chunk_of_time(query.symbol, end), lo), hi)
        while index >= lo and len(rows) < query.limit:
            table = chunks.chunk(query.symbol, index)
            picked = np.flatnonzero(table.times_us <= end)[-(query.limit - len(rows)) :]
            rows = table.rows(picked, query.micro) + rows
            index -= 1
        return rows
    if query.from_id is not None:
        index = chunks.chunk_of_id(query.symbol, query.from_id)
    else:
        assert query.start_us is not None
        index = chunks.chunk_of_time(query.symbol, query.start_us)
    index = max(index, lo)
    while index <= hi and len(rows) < query.limit:
        table = chunks.chunk(query.symbol, index)
        keep = table.times_us <= end
        if query.from_id is not None:
            keep &= table.agg_ids >= query.from_id
        if query.start_us is not None:
            keep &= table.times_us >= query.start_us
        rows += table.rows(np.flatnonzero(keep)[: query.limit - len(rows)], query.micro)
        if len(table.times_us) and table.times_us[-1] > end:
            break
        index += 1
    return rows


def parse(request: Request, listed: set[str]) -> AggQuery:
    """Validate an aggTrades request in Binance's way; raises BadRequest with Binance's error body."""
    params = request.query_params
    symbol = params.get("symbol")
    if not symbol:
        raise BadRequest(mandatory_missing("symbol"))
    if not SYMBOL_RE.match(symbol):
        raise BadRequest(illegal_chars("symbol", SYMBOL_LEGAL))
    values: dict[str, int | None] = {}
    for name in ("fromId", "startTime", "endTime", "limit"):
        raw = params.get(name)
        if raw is not None and not DIGITS.match(raw):
            raise BadRequest(illegal_chars(name))
        values[name] = None if raw is None else int(raw)
    limit = values["limit"]
    if limit is not None and not 1 <= limit <= 1000:
        raise BadRequest(INVALID_PARAMETER)
    if values["fromId"] is not None and (values["startTime"] is not None or values["endTime"] is not None):
        raise BadRequest(error_body(-1128, "Combination of optional parameters invalid."))
    if symbol not in listed:
        raise BadRequest(INVALID_SYMBOL)
    start, end = values["startTime"], values["endTime"]
    return AggQuery(
        symbol=symbol,
        from_id=values["fromId"],
        start_us=None if start is None else to_micros(start),
        end_us=None if end is None else to_micros(end) + (999 if end < 100_000_000_000_000 else 0),
        limit=500 if limit is None else limit,
        micro=wants_micros(request),
    )


def route(state: SimulatorState, generator: TradeGenerator | None) -> Route:
    """The /api/v3/aggTrades route behind the weight/fault gate."""
    root = state.config.archive_dir
    chunks: TradeChunks
    if generator is not None:
        chunks = SyntheticChunks(generator)
    elif root is not None:
        chunks = ArchiveChunks(root)
    else:
        raise ValueError("aggTrades needs the synthetic trade generator or an --archive-dir")
    listed = set(state.source.listings())
    if isinstance(chunks, ArchiveChunks):
        listed |= set(chunks.tables)

    async def agg_trades(request: Request) -> Response:
        try:
            query = parse(request, listed)
        except BadRequest as bad:
            return json_response(bad.body, bad.status)
        if query.start_us is not None and query.end_us is not None and query.start_us > query.end_us:
            return json_response([])
        rows = select(chunks, query, clock.now_us())
        return Response("[" + ",".join(rows) + "]", media_type="application/json")

    return Route("/api/v3/aggTrades", binance_endpoint(state, agg_trades, WEIGHT), methods=ALL_METHODS)
