"""data.binance.vision CSV formats (klines, aggTrades) to validated Arrow tables, exact decimals.

With `wire`, the only place that knows Binance's formats. The archive differs from REST in ways
that matter here: spot files have no header, futures files have one; spot aggTrades have 8 columns
(`is_best_match` last), futures 7; booleans are `True`/`False` (spot) or `true`/`false` (futures);
spot files dated 2025-01-01 or later are in microseconds, futures stay in milliseconds. The unit is
decided per value by magnitude (`wire.MICROS_THRESHOLD`), never by the file's date.

CSVs are parsed by pyarrow's C reader block by block, straight from the zip member, with every column
read as a string and then cast exactly (decimal strings to Decimal(38, 18), never through float), so a
2M-row day is never held as Python objects. Any failure raises `ArchiveFormatError` naming the file,
the data row (1-based, a header is not counted) and the reason; nothing from a bad file is returned.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from warehouse_assets.lib.binance.wire import EXCHANGE, KLINE_FIELDS, MICROS_THRESHOLD, interval_ms
from warehouse_assets.lib.errors import ArchiveFormatError
from warehouse_assets.lib.records import (
    AGG_TRADE_SCHEMA,
    DECIMAL,
    KLINE_DECIMAL_FIELDS,
    KLINE_SCHEMA,
    TIME_MS,
    TIME_US,
)

# Header names as Binance writes them in futures files (spot files have no header).
FUTURES_KLINE_HEADER = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
AGG_TRADE_FIELDS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",  # spot only
)
FUTURES_AGG_TRADE_HEADER = AGG_TRADE_FIELDS[:7]

_KLINE_DECIMALS = KLINE_DECIMAL_FIELDS
_INT64 = pa.int64()
_BOOLEANS = pa.array(["True", "False", "true", "false"])
# 4 MiB blocks: big enough for the C reader to be fast, small enough that only the typed columns of
# a day stay in memory (the string columns of one block are dropped once cast).
_BLOCK_SIZE = 4 << 20


class _Block:
    """One block of string columns and the 1-based data-row number of its first row (for errors)."""

    def __init__(self, file: str, batch: pa.RecordBatch, first_row: int) -> None:
        self.file = file
        self.batch = batch
        self.first_row = first_row

    def strings(self, name: str) -> pa.Array:
        return self.batch.column(name)

    def fail(self, index: int, reason: str) -> ArchiveFormatError:
        return ArchiveFormatError(self.file, reason, row=self.first_row + index)

    def check(self, ok: pa.Array, describe: Callable[[int], str]) -> None:
        """Raise at the first row where `ok` is false (or null), with `describe(index)` as the reason."""
        ok = pc.fill_null(ok, False)
        if not pc.all(ok).as_py():
            index = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
            raise self.fail(index, describe(index))

    def integers(self, name: str, type_: pa.DataType = _INT64) -> pa.Array:
        text = self.strings(name)
        self.check(
            pc.ascii_is_decimal(text),  # digits only: the cast alone would accept "-5" and "0x10"
            lambda i: f"{name} is {text[i].as_py()!r}, expected a non-negative integer",
        )
        try:
            return text.cast(type_)
        except (pa.ArrowInvalid, OverflowError) as exc:
            raise ArchiveFormatError(self.file, f"{name} does not fit {type_} ({exc})") from None

    def decimals(self, name: str) -> pa.Array:
        text = self.strings(name)
        self.check(
            # Digits with at most one ".": no sign, exponent or spaces (what Binance writes). 3x faster
            # than the equivalent regex.
            pc.ascii_is_decimal(pc.replace_substring(text, ".", "", max_replacements=1)),
            lambda i: f"{name} is {text[i].as_py()!r}, expected a non-negative decimal number",
        )
        try:
            return text.cast(DECIMAL)
        except (pa.ArrowInvalid, OverflowError) as exc:
            raise ArchiveFormatError(
                self.file, f"{name} does not fit the warehouse's exact Decimal(38, 18) ({exc})"
            ) from None

    def booleans(self, name: str) -> pa.Array:
        text = self.strings(name)
        self.check(
            pc.is_in(text, value_set=_BOOLEANS),
            lambda i: f"{name} is {text[i].as_py()!r}, expected True/False or true/false",
        )
        return pc.equal(pc.utf8_lower(text), "true")


# ------------------------------------------------------------------------------------------ reading


@contextmanager
def open_csv(path: Path) -> Iterator[IO[bytes]]:
    """The CSV bytes of `path`: the single member of a published zip, or a plain .csv file."""
    if path.suffix.lower() != ".zip":
        with path.open("rb") as stream:
            yield stream
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ArchiveFormatError(path.name, f"not a readable zip file ({exc})") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1 or not members[0].filename.endswith(".csv"):
            names = [m.filename for m in members]
            raise ArchiveFormatError(path.name, f"expected exactly one .csv member, found {names}")
        with archive.open(members[0]) as stream:
            yield stream


def _first_line(path: Path) -> str:
    with open_csv(path) as stream:
        return stream.readline(64 * 1024).decode("utf-8", errors="replace").strip()


def _layout(path: Path, header: tuple[str, ...], widths: tuple[int, ...]) -> tuple[int, bool] | None:
    """(number of columns, has a header line) from the first line, None for an empty file.

    A header must be Binance's own; without one, the first row's width decides (spot 8, futures 7).
    """
    line = _first_line(path)
    if not line:
        return None
    fields = [field.strip() for field in line.split(",")]
    if line[0].isdigit():
        if len(fields) not in widths:
            raise ArchiveFormatError(
                path.name, f"row has {len(fields)} columns, expected {' or '.join(map(str, widths))}", row=1
            )
        return len(fields), False
    if tuple(fields) != header[: len(fields)] or len(fields) not in widths:
        raise ArchiveFormatError(path.name, f"unexpected header {line!r}, expected {','.join(header)}")
    return len(fields), True


def _blocks(path: Path, names: tuple[str, ...], has_header: bool) -> Iterator[_Block]:
    """The file's rows as blocks of string columns, streamed from disk/zip by pyarrow's C reader."""
    read_options = pacsv.ReadOptions(
        column_names=list(names), skip_rows=1 if has_header else 0, block_size=_BLOCK_SIZE
    )
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
    )
    first_row = 1
    with open_csv(path) as stream:
        try:
            reader = pacsv.open_csv(stream, read_options=read_options, convert_options=convert_options)
            for batch in reader:
                yield _Block(path.name, batch, first_row)
                first_row += batch.num_rows
        except pa.ArrowInvalid as exc:  # a row with the wrong number of columns, bad quoting, ...
            raise ArchiveFormatError(
                path.name, f"CSV is malformed after row {first_row - 1} ({exc})"
            ) from None


def _first_failure(ok: np.ndarray) -> int | None:
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else None


def _constant(value: str, n: int) -> pa.Array:
    return pa.repeat(value, n).cast(pa.string())  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- klines


def read_klines(path: Path, *, symbol: str, interval: str = "1m") -> pa.Table:
    """A kline archive (.zip as published, or its .csv) as `records.KLINE_SCHEMA`, times in ms.

    Spot (no header) and futures (header) files; µs times are floored to ms per value. Checks what
    `wire.parse_klines_table` checks (close = open + interval − 1 ms, low <= open, close <= high,
    non-negative numbers), plus open times strictly increasing (no duplicated or reordered minute).
    Missing minutes are allowed: exchange maintenance gaps are real.
    """
    step = interval_ms(interval)
    layout = _layout(path, FUTURES_KLINE_HEADER, (len(KLINE_FIELDS),))
    if layout is None:
        return KLINE_SCHEMA.empty_table()
    has_header = layout[1]
    batches: list[pa.RecordBatch] = []
    for block in _blocks(path, KLINE_FIELDS, has_header):
        batches.append(_kline_batch(block, symbol, step, interval))
    table = pa.Table.from_batches(batches, schema=KLINE_SCHEMA)
    open_ms = table.column("open_time").cast(pa.int64()).to_numpy()
    failure = _first_failure(np.diff(open_ms) > 0)
    if failure is not None:
        row = failure + 2
        raise ArchiveFormatError(
            path.name,
            f"open_time {open_ms[failure + 1]} does not follow the previous row's {open_ms[failure]} "
            "(a duplicated or out-of-order kline)",
            row=row,
        )
    return table


def _kline_batch(block: _Block, symbol: str, step: int, interval: str) -> pa.RecordBatch:
    open_ms = _to_millis(block.integers("open_time"))
    close_ms = _to_millis(block.integers("close_time"))
    trades = block.integers("trades", pa.uint64())
    block.check(
        pc.equal(close_ms, pc.add(open_ms, step - 1)),
        lambda i: f"close_time {close_ms[i]} != open_time {open_ms[i]} + {interval} - 1 ms",
    )
    values = {name: block.decimals(name) for name in _KLINE_DECIMALS}
    low, high = values["low"], values["high"]
    block.check(pc.less_equal(low, high), lambda i: f"high {high[i]} is below low {low[i]}")
    for name in ("open", "close"):
        price = values[name]

        def outside(i: int, name: str = name, price: pa.Array = price) -> str:
            return f"{name} {price[i]} is outside [low {low[i]}, high {high[i]}]"

        block.check(pc.and_(pc.less_equal(low, price), pc.less_equal(price, high)), outside)
    n = block.batch.num_rows
    columns = {
        "exchange": _constant(EXCHANGE, n),
        "symbol": _constant(symbol, n),
        "open_time": open_ms.cast(TIME_MS),
        "close_time": close_ms.cast(TIME_MS),
        "trades": trades,
        **values,
    }
    return pa.RecordBatch.from_arrays([columns[f.name] for f in KLINE_SCHEMA], schema=KLINE_SCHEMA)


def _to_millis(values: pa.Array) -> pa.Array:
    # Epoch times are positive, so integer division (truncation) is floor.
    return pc.if_else(pc.greater(values, MICROS_THRESHOLD), pc.divide(values, 1000), values)


# ---------------------------------------------------------------------------------------- aggTrades


def agg_trades_layout(path: Path) -> tuple[tuple[str, ...], bool] | None:
    """(the file's column names, whether a header line comes first), None for an empty file.

    For loaders that let ClickHouse parse the CSV: spot files have 8 columns and no header, futures files
    7 columns and Binance's header. Raises `ArchiveFormatError` for any other first line.
    """
    layout = _layout(path, FUTURES_AGG_TRADE_HEADER, (8, 7))
    return None if layout is None else (AGG_TRADE_FIELDS[: layout[0]], layout[1])


def read_agg_trades(path: Path, *, symbol: str) -> pa.Table:
    """An aggTrades archive (.zip as published, or its .csv) as `records.AGG_TRADE_SCHEMA`, times in µs.

    Spot files (8 columns, no header, `True`/`False`, µs since 2025) and futures files (7 columns with
    a header, `true`/`false`, ms). `ts` keeps µs when the file has them and is ms × 1000 otherwise: see
    `records.AGG_TRADE_SCHEMA` for why timestamps are µs everywhere. `is_best_match` is checked but
    not kept. Checks, each naming the failing row: aggregate ids contiguous (n + 1 follows n), the
    trade-id chain unbroken (first_trade_id = previous last_trade_id + 1), first <= last, transact
    times non-decreasing, price > 0 and quantity > 0. A row missing from the middle of a file fails
    the first two checks, so a file with a hole is never returned.
    """
    layout = _layout(path, FUTURES_AGG_TRADE_HEADER, (8, 7))
    if layout is None:
        return AGG_TRADE_SCHEMA.empty_table()
    width, has_header = layout
    names = AGG_TRADE_FIELDS[:width]
    batches = [_agg_trade_batch(block, symbol, width == 8) for block in _blocks(path, names, has_header)]
    table = pa.Table.from_batches(batches, schema=AGG_TRADE_SCHEMA)
    _check_agg_trade_chain(path.name, table)
    return table


def _agg_trade_batch(block: _Block, symbol: str, has_best_match: bool) -> pa.RecordBatch:
    ids = block.integers("agg_trade_id", pa.uint64())
    first_ids = block.integers("first_trade_id", pa.uint64())
    last_ids = block.integers("last_trade_id", pa.uint64())
    times = block.integers("transact_time")
    price = block.decimals("price")
    qty = block.decimals("quantity")
    zero = pa.scalar(0, DECIMAL)
    block.check(pc.greater(price, zero), lambda i: f"price is {price[i]}, expected > 0")
    block.check(pc.greater(qty, zero), lambda i: f"quantity is {qty[i]}, expected > 0")
    block.check(
        pc.less_equal(first_ids, last_ids),
        lambda i: f"first_trade_id {first_ids[i]} is after last_trade_id {last_ids[i]}",
    )
    is_buyer_maker = block.booleans("is_buyer_maker")
    if has_best_match:
        block.booleans("is_best_match")
    ts_us = pc.if_else(pc.greater(times, MICROS_THRESHOLD), times, pc.multiply(times, 1000))
    n = block.batch.num_rows
    columns = {
        "exchange": _constant(EXCHANGE, n),
        "symbol": _constant(symbol, n),
        "trade_id": ids,
        "price": price,
        "qty": qty,
        "first_trade_id": first_ids,
        "last_trade_id": last_ids,
        "ts": ts_us.cast(TIME_US),
        "is_buyer_maker": is_buyer_maker,
    }
    return pa.RecordBatch.from_arrays([columns[f.name] for f in AGG_TRADE_SCHEMA], schema=AGG_TRADE_SCHEMA)


def _check_agg_trade_chain(file: str, table: pa.Table) -> None:
    """Row-to-row checks over the whole file (they span block boundaries), vectorised in numpy."""
    if table.num_rows < 2:
        return
    ids = table.column("trade_id").to_numpy()
    first_ids = table.column("first_trade_id").to_numpy()
    last_ids = table.column("last_trade_id").to_numpy()
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (
            ids[1:] == ids[:-1] + 1,
            lambda i: (
                f"agg_trade_id {ids[i + 1]} follows {ids[i]}: aggregate ids are not contiguous "
                f"({_gap(ids[i], ids[i + 1])}); the file is truncated or corrupt"
            ),
        ),
        (
            first_ids[1:] == last_ids[:-1] + 1,
            lambda i: (
                f"first_trade_id {first_ids[i + 1]} does not follow the previous row's last_trade_id "
                f"{last_ids[i]}: the trade-id chain is broken"
            ),
        ),
        (
            ts[1:] >= ts[:-1],
            lambda i: f"transact_time {ts[i + 1]} µs is before the previous row's {ts[i]} µs",
        ),
    ]
    # Report the earliest failing row, whichever check it failed.
    found = [(index, describe) for ok, describe in checks if (index := _first_failure(ok)) is not None]
    if found:
        index, describe = min(found, key=lambda item: item[0])
        raise ArchiveFormatError(file, describe(index), row=index + 2)


def _gap(previous: int, current: int) -> str:
    if current > previous:
        return f"{int(current) - int(previous) - 1} missing"
    return "repeated or out of order"
