"""data.binance.vision on the simulator: daily spot klines and aggTrades zips and their CHECKSUMs.

GET /data/spot/daily/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY-MM-DD}.zip[.CHECKSUM]
GET /data/spot/daily/aggTrades/{SYMBOL}/{SYMBOL}-aggTrades-{YYYY-MM-DD}.zip[.CHECKSUM]

Plain static files like the real S3-backed site: no request weight, no X-MBX headers, never
touched by the REST fault switches; an absent file is a 404 with S3's NoSuchKey XML body. With
--archive-dir the real files found there are served (zips and CHECKSUMs byte for byte, a bare .csv
zipped on the fly); otherwise the files are built from the synthetic market, deterministically for
(seed, symbol, day), once the day is `archive_delay_hours` old (32 h = 08:00 UTC next day). A zip
holds one CSV of the same base name, spot format: no header, ms times before 2025, us from 2025 on.
The archive_corrupt / archive_truncate / archive_missing faults act here.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import OrderedDict
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.archive import PublishedFile, find_published
from warehouse_assets.simulator.protocol import DAY_MS, MINUTE_MS
from warehouse_assets.simulator.state import SimulatorState
from warehouse_assets.simulator.synthetic import SyntheticSource, render
from warehouse_assets.simulator.trades import TradeDay, TradeGenerator

NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<kind>aggTrades|1m)-(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})\.zip$")
MICROS_FROM = date(2025, 1, 1)  # spot archive files use microsecond timestamps from this day on
CACHE_FILES = 16
_MINUTES = np.arange(1440, dtype=np.int64)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def not_found(key: str) -> Response:
    """S3's answer for a key that does not exist."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        f"<Message>The specified key does not exist.</Message><Key>{key}</Key></Error>"
    )
    return Response(body, status_code=404, media_type="application/xml")


def zip_csv(csv_name: str, data: bytes, day: date) -> bytes:
    """A deterministic zip holding one CSV (fixed timestamp: the day after, like the real uploads)."""
    info = zipfile.ZipInfo(csv_name, date_time=(*(day + timedelta(days=1)).timetuple()[:3], 6, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, data, compresslevel=1)
    return buffer.getvalue()


def checksum_text(zip_bytes: bytes, name: str) -> bytes:
    """sha256sum's line: '<hex>  <name>\\n'."""
    return f"{hashlib.sha256(zip_bytes).hexdigest()}  {name}\n".encode()


def truncate_csv(data: bytes) -> bytes:
    """The first half of the CSV's lines."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2])


def corrupt(zip_bytes: bytes) -> bytes:
    """The same zip with one byte of its compressed data flipped (the checksum no longer matches)."""
    middle = len(zip_bytes) // 2
    return zip_bytes[:middle] + bytes([zip_bytes[middle] ^ 0xFF]) + zip_bytes[middle + 1 :]


def _decimal_texts(values_e8: np.ndarray) -> pa.Array:
    """8-decimal strings of e8 integers, formatted once per distinct value (prices repeat a lot)."""
    distinct, inverse = np.unique(values_e8, return_inverse=True)
    whole, fraction = np.divmod(distinct, 10**8)
    texts = pa.array([f"{w}.{f:08d}" for w, f in zip(whole.tolist(), fraction.tolist(), strict=True)])
    return texts.take(pa.array(inverse))


def agg_trades_csv(trades: TradeDay, micro: bool) -> bytes:
    """Spot aggTrades CSV: agg id, price, qty, first id, last id, time, is_buyer_maker, is_best_match.

    Written with Arrow's CSV writer: a 2-million-trade day takes about a second, not ten.
    """
    n = len(trades.agg_ids)
    table = pa.table({
        "a": trades.agg_ids,
        "p": _decimal_texts(trades.prices_e8),
        "q": _decimal_texts(trades.qtys_e8),
        "f": trades.first_ids,
        "l": trades.last_ids,
        "T": trades.times_us if micro else trades.times_us // 1000,
        "m": pa.array(["False", "True"]).take(pa.array(trades.buyer_maker.astype(np.int8))),
        "M": pa.array(["True"]).take(pa.array(np.zeros(n, dtype=np.int8))),
    })  # fmt: skip
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()


class ArchivePublisher:
    """Finds or builds the bytes of archive files; caches built zips (LRU)."""

    def __init__(self, state: SimulatorState, trades: TradeGenerator | None) -> None:
        self.state = state
        self.trades = trades
        root = state.config.archive_dir
        self.real: dict[str, PublishedFile] | None = None if root is None else find_published(root)
        self._cache: OrderedDict[tuple[str, bool], tuple[bytes, bytes]] = OrderedDict()

    def files(self, name: str, truncated: bool) -> tuple[bytes, bytes] | None:
        """(zip bytes, CHECKSUM bytes) of a file name, or None when it is not published."""
        key = (name, truncated)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        built = self._build(name, truncated)
        if built is not None:
            self._cache[key] = built
            if len(self._cache) > CACHE_FILES:
                self._cache.popitem(last=False)
        return built

    def _build(self, name: str, truncated: bool) -> tuple[bytes, bytes] | None:
        if self.real is not None:
            return self._real(name, truncated)
        match = NAME.match(name)
        if match is None:
            return None
        day = date.fromisoformat(match["day"])
        csv = self._synthetic_csv(match["symbol"], match["kind"], day)
        if csv is None:
            return None
        data = zip_csv(name[:-4] + ".csv", truncate_csv(csv) if truncated else csv, day)
        return data, checksum_text(data, name)

    def _real(self, name: str, truncated: bool) -> tuple[bytes, bytes] | None:
        assert self.real is not None
        found = self.real.get(name)
        if found is None:
            return None
        data = found.path.read_bytes()
        if found.path.suffix == ".csv" or truncated:
            if found.path.suffix == ".zip":
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    data = archive.read(archive.namelist()[0])
            found_day = DATE.search(name)
            day = date.fromisoformat(found_day[0]) if found_day else date(2000, 1, 1)
            data = zip_csv(name[:-4] + ".csv", truncate_csv(data) if truncated else data, day)
        elif found.checksum is not None:
            return data, found.checksum.read_bytes()
        return data, checksum_text(data, name)

    def _synthetic_csv(self, symbol: str, kind: str, day: date) -> bytes | None:
        source = self.state.source
        if not isinstance(source, SyntheticSource) or symbol not in source.market.specs:
            return None
        epoch_day = (day - date(1970, 1, 1)).days
        published_ms = epoch_day * DAY_MS + self.state.config.archive_delay_hours * 3_600_000
        if epoch_day * DAY_MS < source.market.listing_ms(symbol) or published_ms > clock.now_ms():
            return None
        micro = day >= MICROS_FROM
        if kind == "aggTrades":
            assert self.trades is not None
            return agg_trades_csv(self.trades.day(symbol, epoch_day), micro)
        opens = epoch_day * DAY_MS + MINUTE_MS * _MINUTES
        rows = render(opens, source.market.day(symbol, epoch_day), MINUTE_MS, micro)
        return ("\n".join(row[1:-1].replace('"', "") for row in rows) + "\n").encode()


def routes(state: SimulatorState, trades: TradeGenerator | None) -> list[BaseRoute]:
    """The /data/spot/daily/... routes (register them before the Binance fallback route)."""
    publisher = ArchivePublisher(state, trades)

    async def serve(request: Request) -> Response:
        path = request.url.path
        key = path.lstrip("/")
        file_name = path.rsplit("/", 1)[-1]
        params = request.path_params
        want_checksum = file_name.endswith(".CHECKSUM")
        zip_name = file_name.removesuffix(".CHECKSUM")
        expected = f"{params['symbol']}-{params.get('interval', 'aggTrades')}-"
        faults = state.faults.current
        if not zip_name.startswith(expected) or not zip_name.endswith(".zip"):
            return not_found(key)
        if zip_name in faults.archive_missing or file_name in faults.archive_missing:
            return not_found(key)
        found = publisher.files(zip_name, zip_name in faults.archive_truncate)
        if found is None:
            return not_found(key)
        data, checksum = found
        if want_checksum:
            return Response(checksum, media_type="text/plain")
        if zip_name in faults.archive_corrupt:
            data = corrupt(data)
        return Response(data, media_type="application/zip")

    return [
        Route("/data/spot/daily/klines/{symbol}/{interval}/{file}", serve, methods=["GET", "HEAD"]),
        Route("/data/spot/daily/aggTrades/{symbol}/{file}", serve, methods=["GET", "HEAD"]),
    ]
