"""ArchiveClient over real HTTP (a stdlib file server on 127.0.0.1 serving real archives in the
data.binance.vision layout): verified downloads, 404 -> not published, checksum mismatch (file
deleted), 5xx retries, day-coverage checks; and the official CHECKSUM files against our sha256."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import shutil
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse_assets.lib.binance.archive import (
    ArchiveClient,
    binance_archive_url,
    parse_checksum,
    sha256_file,
)
from warehouse_assets.lib.binance.archive_format import read_klines
from warehouse_assets.lib.errors import (
    ArchiveChecksumError,
    ArchiveFormatError,
    ArchiveNotPublishedError,
    ArchiveUnavailableError,
    MalformedResponseError,
)
from warehouse_assets.lib.retry import Backoff

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VISION = SHARED_DATA / "binance_vision"
SPOT_KLINES = VISION / "spot" / "klines"
SPOT_AGG_CSV = VISION / "spot" / "aggTrades" / "BTCUSDT-aggTrades-2026-01-01_first5000rows.csv"
CM_AGG_ZIP = VISION / "futures_cm" / "aggTrades" / "BTCUSD_PERP-aggTrades-2026-05-08.zip"
FAST = Backoff(base=0.001, cap=0.01)


@pytest.mark.parametrize(
    "zip_path",
    [
        *(SPOT_KLINES / f"BTCUSDT-1m-2020-01-0{d}.zip" for d in (1, 2, 3)),
        SPOT_KLINES / "BTCUSDT-1h-2026-05-08.zip",
        SPOT_KLINES / "BTCUSDT-1h-2026-05-09.zip",
        CM_AGG_ZIP,
    ],
    ids=lambda p: p.name,
)
def test_official_checksum_files_verify(zip_path: Path) -> None:
    url = f"https://data.binance.vision/x/{zip_path.name}"
    expected = parse_checksum(Path(f"{zip_path}.CHECKSUM").read_text(), url=url)
    assert sha256_file(zip_path) == expected == hashlib.sha256(zip_path.read_bytes()).hexdigest()


def test_checksum_of_another_file_or_garbage_is_malformed() -> None:
    text = (SPOT_KLINES / "BTCUSDT-1m-2020-01-01.zip.CHECKSUM").read_text()
    with pytest.raises(MalformedResponseError, match="not of 'BTCUSDT-1m-2020-01-02.zip'"):
        parse_checksum(text, url="https://h/BTCUSDT-1m-2020-01-02.zip")
    with pytest.raises(MalformedResponseError, match="expected '<sha256>  <filename>'"):
        parse_checksum("<html>Access denied</html>", url="https://h/BTCUSDT-1m-2020-01-01.zip")


def test_corrupted_zip_fails_the_published_checksum(tmp_path: Path) -> None:
    corrupt = flip_a_byte(SPOT_KLINES / "BTCUSDT-1m-2020-01-01.zip", tmp_path)
    expected = parse_checksum(
        (SPOT_KLINES / "BTCUSDT-1m-2020-01-01.zip.CHECKSUM").read_text(), url=corrupt.name
    )
    assert sha256_file(corrupt) != expected


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINANCE_ARCHIVE_URL", raising=False)
    assert binance_archive_url() == "https://data.binance.vision"
    monkeypatch.setenv("BINANCE_ARCHIVE_URL", "http://127.0.0.1:9/mirror/")
    assert binance_archive_url() == "http://127.0.0.1:9/mirror"
    client = ArchiveClient()
    assert client.daily_klines_url("BTCUSDT", date(2024, 3, 1)) == (
        "http://127.0.0.1:9/mirror/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-01.zip"
    )
    assert client.daily_agg_trades_url("BTCUSDT", date(2024, 3, 1)) == (
        "http://127.0.0.1:9/mirror/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-03-01.zip"
    )
    asyncio.run(client.aclose())


def test_errors_survive_pickling() -> None:
    errors = [
        ArchiveNotPublishedError("http://h/a.zip"),
        ArchiveChecksumError("a.zip", "0" * 64, "1" * 64),
        ArchiveFormatError("a.zip", "agg_trade_id 5 follows 3", row=7),
        ArchiveUnavailableError("http://h/a.zip", attempts=3, last_problem="HTTP 503"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


# ------------------------------------------------------------------------------- HTTP server


def flip_a_byte(source: Path, directory: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target = directory / source.name
    target.write_bytes(bytes(data))
    return target


class ArchiveServer:
    """A directory served over HTTP like data.binance.vision; counts requests, can fail on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.failures: dict[str, int] = {}  # path -> how many 503s to answer before serving
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path] += 1
                if server.failures.get(self.path, 0) > 0:
                    server.failures[self.path] -= 1
                    self.send_error(503, "Service Unavailable")
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, url_path: str, data: bytes, *, checksum: bool | str = True) -> None:
        """Put `data` at `url_path`, with its real sha256 CHECKSUM (or a given one, or none)."""
        target = self.root / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if checksum:
            digest = checksum if isinstance(checksum, str) else hashlib.sha256(data).hexdigest()
            Path(f"{target}.CHECKSUM").write_text(f"{digest}  {target.name}\n")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ArchiveServer]:
    handle = ArchiveServer(tmp_path / "www")
    handle.root.mkdir()
    handle.thread.start()
    yield handle
    handle.httpd.shutdown()
    handle.httpd.server_close()


def klines_path(symbol: str, day: str, interval: str = "1m") -> str:
    return f"/data/spot/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{day}.zip"


def publish_real_klines(server: ArchiveServer, name: str, interval: str = "1m") -> str:
    """A real zip with its official CHECKSUM file, at its data.binance.vision path."""
    symbol, _, day = name.removesuffix(".zip").split("-", 2)
    path = klines_path(symbol, day, interval)
    target = server.root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPOT_KLINES / name, target)
    shutil.copy(SPOT_KLINES / f"{name}.CHECKSUM", f"{target}.CHECKSUM")
    return path


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def fetch(server: ArchiveServer, url_path: str, dest: Path, **options: Any) -> Path:
    async with ArchiveClient(server.url, backoff=FAST, **options) as client:
        return await client.fetch_verified(server.url + url_path, dest)


def test_fetch_verified_downloads_and_reuses_a_matching_file(server: ArchiveServer, tmp_path: Path) -> None:
    path = publish_real_klines(server, "BTCUSDT-1m-2020-01-01.zip")
    dest = tmp_path / "dest"
    got = run(fetch(server, path, dest))
    assert got == dest / "BTCUSDT-1m-2020-01-01.zip"
    assert got.read_bytes() == (SPOT_KLINES / "BTCUSDT-1m-2020-01-01.zip").read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["BTCUSDT-1m-2020-01-01.zip"]  # no .part left
    assert server.requests[path] == 1 and server.requests[path + ".CHECKSUM"] == 1
    run(fetch(server, path, dest))  # already there and still matching: only the CHECKSUM is fetched
    assert server.requests[path] == 1 and server.requests[path + ".CHECKSUM"] == 2


def test_missing_file_or_checksum_is_not_published(server: ArchiveServer, tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotPublishedError) as caught:
        run(fetch(server, klines_path("BTCUSDT", "2030-01-01"), tmp_path / "a"))
    assert caught.value.url.endswith("BTCUSDT-1m-2030-01-01.zip.CHECKSUM") and caught.value.status == 404
    # A zip without its CHECKSUM is never trusted.
    server.publish(klines_path("BTCUSDT", "2020-01-01"), b"PK unverifiable", checksum=False)
    with pytest.raises(ArchiveNotPublishedError, match=r"\.zip\.CHECKSUM is not published"):
        run(fetch(server, klines_path("BTCUSDT", "2020-01-01"), tmp_path / "b"))
    # A CHECKSUM without its zip.
    path = publish_real_klines(server, "BTCUSDT-1m-2020-01-02.zip")
    (server.root / path.lstrip("/")).unlink()
    with pytest.raises(ArchiveNotPublishedError) as caught:
        run(fetch(server, path, tmp_path / "c"))
    assert caught.value.url == server.url + path
    assert list((tmp_path / "c").iterdir()) == []


def test_checksum_mismatch_names_both_digests_and_deletes_the_file(
    server: ArchiveServer, tmp_path: Path
) -> None:
    path = publish_real_klines(server, "BTCUSDT-1m-2020-01-03.zip")
    corrupt = flip_a_byte(SPOT_KLINES / "BTCUSDT-1m-2020-01-03.zip", tmp_path)
    shutil.copy(corrupt, server.root / path.lstrip("/"))  # the official CHECKSUM stays
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveChecksumError) as caught:
        run(fetch(server, path, dest))
    official = (SPOT_KLINES / "BTCUSDT-1m-2020-01-03.zip.CHECKSUM").read_text().split()[0]
    assert caught.value.expected == official
    assert caught.value.actual == sha256_file(corrupt) != official
    assert official in str(caught.value) and caught.value.actual in str(caught.value)
    assert "BTCUSDT-1m-2020-01-03.zip" in str(caught.value)
    assert list(dest.iterdir()) == []


def test_server_errors_are_retried_then_reported(server: ArchiveServer, tmp_path: Path) -> None:
    path = publish_real_klines(server, "BTCUSDT-1m-2020-01-01.zip")
    server.failures = {path + ".CHECKSUM": 2, path: 2}
    got = run(fetch(server, path, tmp_path / "a"))
    assert sha256_file(got) == sha256_file(SPOT_KLINES / "BTCUSDT-1m-2020-01-01.zip")
    assert server.requests[path] == 3 and server.requests[path + ".CHECKSUM"] == 3
    server.failures = {path: 100}
    with pytest.raises(ArchiveUnavailableError) as caught:
        run(fetch(server, path, tmp_path / "b", max_attempts=3))
    assert caught.value.attempts == 3 and caught.value.last_problem == "HTTP 503"
    assert list((tmp_path / "b").iterdir()) == []


def test_daily_klines_over_http(server: ArchiveServer, tmp_path: Path) -> None:
    for day in ("2020-01-01", "2020-01-02", "2020-01-03"):
        publish_real_klines(server, f"BTCUSDT-1m-{day}.zip")
    publish_real_klines(server, "BTCUSDT-1h-2026-05-08.zip", interval="1h")

    async def read_all() -> list[pa.Table]:
        async with ArchiveClient(server.url, backoff=FAST) as client:
            days = [date(2020, 1, d) for d in (1, 2, 3)]
            tables = await asyncio.gather(*(client.daily_klines("BTCUSDT", d) for d in days))
            tables.append(await client.daily_klines("BTCUSDT", date(2026, 5, 8), "1h"))
            return tables

    tables = run(read_all())
    for d, table in zip((1, 2, 3), tables, strict=False):
        assert table.equals(read_klines(SPOT_KLINES / f"BTCUSDT-1m-2020-01-0{d}.zip", symbol="BTCUSDT"))
        open_ms = table.column("open_time").cast(pa.int64())
        start = int(datetime(2020, 1, d, tzinfo=UTC).timestamp()) * 1000
        assert open_ms[0].as_py() == start and open_ms[-1].as_py() == start + 86_400_000 - 60_000
    hourly = tables[3]
    assert hourly.num_rows == 24 and hourly.column("open_time")[0].value == 1778198400000


def test_daily_klines_rejects_rows_from_another_day(server: ArchiveServer, tmp_path: Path) -> None:
    # The 2020-01-02 file published under 2020-01-01's name, with a CHECKSUM that matches it.
    data = (SPOT_KLINES / "BTCUSDT-1m-2020-01-02.zip").read_bytes()
    server.publish(klines_path("BTCUSDT", "2020-01-01"), data)

    async def read() -> pa.Table:
        async with ArchiveClient(server.url, cache_dir=tmp_path / "cache", backoff=FAST) as client:
            return await client.daily_klines("BTCUSDT", date(2020, 1, 1))

    with pytest.raises(
        ArchiveFormatError, match="open_time 1577923200000 ms is outside 2020-01-01"
    ) as caught:
        run(read())
    assert caught.value.row == 1
    cached = tmp_path / "cache" / "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip"
    assert cached.exists()  # verified bytes are kept; it is their content that is wrong


def zip_bytes(member: str, data: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path.read_bytes()


def test_daily_agg_trades_reports_what_the_file_covers(server: ArchiveServer, tmp_path: Path) -> None:
    # The first 12 minutes of 2026-01-01 (a truncated day, as a cut-short file would look).
    data = zip_bytes("BTCUSDT-aggTrades-2026-01-01.csv", SPOT_AGG_CSV.read_bytes(), tmp_path)
    server.publish("/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-01-01.zip", data)
    # The whole-day COIN-M file with its official CHECKSUM, at the spot path of its symbol.
    target = server.root / "data/spot/daily/aggTrades/BTCUSD_PERP" / CM_AGG_ZIP.name
    target.parent.mkdir(parents=True)
    shutil.copy(CM_AGG_ZIP, target)
    shutil.copy(f"{CM_AGG_ZIP}.CHECKSUM", f"{target}.CHECKSUM")

    async def read() -> list[Any]:
        async with ArchiveClient(server.url, backoff=FAST) as client:
            return [
                await client.daily_agg_trades("BTCUSDT", date(2026, 1, 1)),
                await client.daily_agg_trades("BTCUSD_PERP", date(2026, 5, 8)),
            ]

    spot, coin_m = run(read())
    assert spot.table.num_rows == 5000
    assert (spot.first_id, spot.last_id) == (3800397495, 3800402494)
    assert spot.first_ts == datetime(2026, 1, 1, 0, 0, 0, 39409, tzinfo=UTC)  # µs kept
    assert spot.last_ts.replace(microsecond=0) == datetime(2026, 1, 1, 0, 12, 19, tzinfo=UTC)
    assert spot.last_ts.microsecond // 1000 == 347
    assert spot.uncovered_tail > timedelta(hours=23, minutes=47)
    assert coin_m.table.num_rows == 105_280
    assert (coin_m.first_id, coin_m.last_id) == (480537903, 480643182)
    assert coin_m.first_ts == datetime(2026, 5, 8, 0, 0, 0, 20000, tzinfo=UTC)
    assert coin_m.last_ts == datetime(2026, 5, 8, 23, 59, 59, 655000, tzinfo=UTC)
    assert coin_m.uncovered_tail == timedelta(microseconds=345000)
    assert pc.sum(coin_m.table.column("qty")).as_py() > Decimal(0)


def test_daily_agg_trades_rejects_trades_outside_the_day(server: ArchiveServer, tmp_path: Path) -> None:
    data = zip_bytes("BTCUSDT-aggTrades-2025-12-31.csv", SPOT_AGG_CSV.read_bytes(), tmp_path)
    server.publish("/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-12-31.zip", data)

    async def read() -> Any:
        async with ArchiveClient(server.url, backoff=FAST) as client:
            return await client.daily_agg_trades("BTCUSDT", date(2025, 12, 31))

    with pytest.raises(ArchiveFormatError, match="1767225600039409 µs is outside 2025-12-31") as caught:
        run(read())
    assert caught.value.row == 1
