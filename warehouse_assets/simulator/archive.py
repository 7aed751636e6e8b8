"""The archive kline source: real data.binance.vision kline files served as they are.

Files are found recursively under the archive directory in data.binance.vision naming, flat
(`DIR/klines/BTCUSDT-1m-2020-01-01.zip`) or in the real layout
(`DIR/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip`), as a `.zip` holding one CSV or a bare
`.csv`. Spot CSVs have no header, futures CSVs have one (a first line not starting with a digit is
skipped). Each timestamp is ms or us by its own magnitude, never by the file date. Every value is
kept as the exact string of the file: nothing goes through a float. Minutes without a file have no
klines, like an exchange outage.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warehouse_assets.simulator.klines import KlineQuery, Ranges, SymbolListing, select_in_array
from warehouse_assets.simulator.protocol import INTERVAL_MS, MICROS_THRESHOLD
from warehouse_assets.simulator.symbols import split_symbol

log = logging.getLogger(__name__)

FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+(?:_[A-Z0-9]+)?)-(?P<interval>[0-9]+[smhdwM]|1mo)-(?P<rest>.+)\.(?:zip|csv)$"
)


@dataclass(frozen=True)
class ArchiveFile:
    """One kline file of the archive."""

    path: Path
    symbol: str
    interval: str  # Binance REST spelling (monthly files say 1mo for 1M)
    label: str  # the rest of the name: 2020-01-01, 2023-02, ...


@dataclass
class Series:
    """The klines of one symbol and interval, sorted by open time."""

    opens_us: np.ndarray  # int64
    closes_us: np.ndarray  # int64
    middles: list[str]  # '"open","high","low","close","volume"' exactly as in the file
    tails: list[str]  # '"quoteVolume",trades,"takerBase","takerQuote","ignore"'


def find_files(root: Path) -> list[ArchiveFile]:
    """Kline files under root, in path order (aggTrades, CHECKSUM and other files are ignored)."""
    found = []
    for path in sorted(root.rglob("*")):
        match = FILE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        interval = "1M" if match["interval"] == "1mo" else match["interval"]
        if interval in INTERVAL_MS:
            found.append(ArchiveFile(path, match["symbol"], interval, match["rest"]))
    return found


def read_lines(path: Path) -> list[str]:
    """The CSV lines of a .csv file or of the single CSV member of a .zip."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith(".csv")]
            if len(members) != 1:
                raise ValueError(f"{path}: expected one CSV member in the zip, found {members}")
            data = archive.read(members[0])
    else:
        data = path.read_bytes()
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="").read().splitlines()


def _micros(text: str, closing: bool) -> int:
    value = int(text)
    if value >= MICROS_THRESHOLD:
        return value
    return value * 1000 + (999 if closing else 0)  # a ms close time covers its whole last ms


def _decimals(text: str) -> int:
    _, _, fraction = text.partition(".")
    return len(fraction.rstrip("0"))


class ArchiveSource:
    """KlineSource over the kline files of an archive directory, loaded at start-up."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(
                f"archive directory {root} does not exist; pass an existing --archive-dir"
            )
        self.root = root
        self.files = find_files(root)
        if not self.files:
            raise FileNotFoundError(
                f"no kline files named like BTCUSDT-1m-2020-01-01.zip (or .csv) found under {root}"
            )
        rows: dict[tuple[str, str], dict[int, tuple[int, str, str]]] = {}
        decimals: dict[str, list[int]] = {}
        for file in self.files:
            table = rows.setdefault((file.symbol, file.interval), {})
            price_places, qty_places = decimals.setdefault(file.symbol, [0, 0])
            for number, line in enumerate(read_lines(file.path), start=1):
                if not line or (number == 1 and not line[:1].isdigit()):
                    continue  # the header of a futures file
                fields = line.split(",")
                if len(fields) < 12 or not fields[0].isdigit() or not fields[6].isdigit():
                    log.warning("%s line %d is not a 12-column kline row; skipped", file.path, number)
                    continue
                open_us = _micros(fields[0], closing=False)
                if open_us in table:
                    log.warning(
                        "%s line %d repeats open time %s; the first is kept", file.path, number, fields[0]
                    )
                    continue
                middle = ",".join(json.dumps(f) for f in fields[1:6])
                trades = fields[8] if fields[8].isdigit() else json.dumps(fields[8])
                tail = ",".join([json.dumps(fields[7]), trades, *(json.dumps(f) for f in fields[9:12])])
                table[open_us] = (_micros(fields[6], closing=True), middle, tail)
                price_places = max(price_places, *(_decimals(f) for f in fields[1:5]))
                qty_places = max(qty_places, _decimals(fields[5]))
            decimals[file.symbol] = [price_places, qty_places]
        self.series: dict[tuple[str, str], Series] = {}
        for key, table in rows.items():
            opens = sorted(table)
            self.series[key] = Series(
                np.array(opens, dtype=np.int64),
                np.array([table[o][0] for o in opens], dtype=np.int64),
                [table[o][1] for o in opens],
                [table[o][2] for o in opens],
            )
        self._listings = {}
        for symbol, (price_places, qty_places) in sorted(decimals.items()):
            base, quote = split_symbol(symbol)
            tick, lot = 10 ** (8 - min(price_places, 8)), 10 ** (8 - min(qty_places, 8))
            self._listings[symbol] = SymbolListing(symbol, base, quote, tick, lot)

    def listings(self) -> dict[str, SymbolListing]:
        return self._listings

    def serves(self, interval: str) -> bool:
        return interval in INTERVAL_MS

    def klines(self, query: KlineQuery, missing: Ranges, now_ms: int) -> tuple[list[int], list[str]]:
        series = self.series.get((query.symbol, query.interval))
        if series is None:
            return [], []
        index = select_in_array(series.opens_us, query, missing)
        opens_us = series.opens_us[index]
        closes_us = series.closes_us[index]
        if not query.micro:
            opens_out, closes_out = opens_us // 1000, closes_us // 1000
        else:
            opens_out, closes_out = opens_us, closes_us
        middles, tails = series.middles, series.tails
        rows = [
            f"[{o},{middles[i]},{c},{tails[i]}]"
            for i, o, c in zip(index.tolist(), opens_out.tolist(), closes_out.tolist(), strict=True)
        ]
        return (opens_us // 1000).tolist(), rows


PUBLISHED_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+(?:_[A-Z0-9]+)?)-(?P<kind>aggTrades|[0-9]+[smhdw])-"
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})(?:_[^.]*)?\.(?P<ext>zip|csv)$"
)


@dataclass(frozen=True)
class PublishedFile:
    """A daily archive file as data.binance.vision would publish it under `name` (a .zip name)."""

    name: str  # BTCUSDT-1m-2020-01-01.zip or BTCUSDT-aggTrades-2026-01-01.zip
    path: Path  # the real .zip (served byte for byte) or a .csv (zipped on the fly)
    checksum: Path | None  # the real .CHECKSUM beside the zip, if any


def find_published(root: Path) -> dict[str, PublishedFile]:
    """Daily kline and aggTrades files under root by the zip name they are served as.

    A trailing `_anything` after the date (`BTCUSDT-aggTrades-2026-01-01_first5000rows.csv`) is
    dropped from the served name. A real .zip wins over a .csv of the same day.
    """
    found: dict[str, PublishedFile] = {}
    for path in sorted(root.rglob("*")):
        match = PUBLISHED_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        name = f"{match['symbol']}-{match['kind']}-{match['day']}.zip"
        if name in found and found[name].path.suffix == ".zip":
            continue
        checksum = path.with_name(path.name + ".CHECKSUM") if match["ext"] == "zip" else None
        found[name] = PublishedFile(name, path, checksum if checksum and checksum.is_file() else None)
    return found
