"""data.binance.vision endpoints of the simulator: real files byte for byte, synthetic zips, faults."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

SPOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance_vision" / "spot"
DAY_MS = 86_400_000
KLINES = "/data/spot/daily/klines/{s}/1m/{s}-1m-{d}.zip"
AGG = "/data/spot/daily/aggTrades/{s}/{s}-aggTrades-{d}.zip"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=["BTCUSDT", "XRPUSDT"]) as handle:
        yield handle


@pytest.fixture(scope="module")
def synthetic(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url) as c:
        yield c


@pytest.fixture(scope="module")
def archive() -> Iterator[tuple[SimulatorHandle, httpx.Client]]:
    if not SPOT.is_dir():
        pytest.fail(
            f"the shared sample data is not at {SPOT}: run the tests from a checkout with ../shared beside it"
        )
    with run_simulator(archive_dir=SPOT) as sim, httpx.Client(base_url=sim.base_url) as c:
        yield sim, c


def fetch(client: httpx.Client, path: str) -> tuple[bytes, str]:
    """(zip bytes, CHECKSUM text) of a served file; both must be 200."""
    data, checksum = client.get(path), client.get(path + ".CHECKSUM")
    assert data.status_code == 200 and checksum.status_code == 200, (path, data.text[:200])
    assert data.headers["content-type"] == "application/zip" and "x-mbx-used-weight-1m" not in data.headers
    return data.content, checksum.text


def verifies(data: bytes, checksum: str, name: str) -> bool:
    digest, _, file_name = checksum.rstrip("\n").partition("  ")
    assert file_name == name  # real 2020 CHECKSUM files have no final newline; computed ones do
    return hashlib.sha256(data).hexdigest() == digest


def member(data: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (name,) = z.namelist()
        return name, z.read(name)


def rest_day(client: httpx.Client, symbol: str, day_ms: int, micro: bool = False) -> list[str]:
    headers = {"X-MBX-TIME-UNIT": "MICROSECOND"} if micro else {}
    rows: list[list[object]] = []
    for start in (day_ms, day_ms + 1000 * 60_000):
        params = {"symbol": symbol, "interval": "1m", "startTime": start, "endTime": day_ms + DAY_MS - 1, "limit": 1000}  # fmt: skip
        rows += client.get("/api/v3/klines", params=params, headers=headers).json()
    return [",".join(str(v) for v in row) for row in rows]


def test_real_files_are_served_byte_for_byte(archive: tuple[SimulatorHandle, httpx.Client]) -> None:
    _, client = archive
    zips = sorted((SPOT / "klines").glob("*-1m-*.zip"))
    assert len(zips) == 5
    for path in zips:
        symbol = path.name.split("-")[0]
        data, checksum = fetch(client, f"/data/spot/daily/klines/{symbol}/1m/{path.name}")
        assert data == path.read_bytes()
        real = path.with_name(path.name + ".CHECKSUM")
        if real.exists():
            assert checksum.encode() == real.read_bytes()
        assert verifies(data, checksum, path.name)
    hourly = SPOT / "klines" / "BTCUSDT-1h-2026-05-08.zip"
    data, _ = fetch(client, f"/data/spot/daily/klines/BTCUSDT/1h/{hourly.name}")
    assert data == hourly.read_bytes()
    # a bare CSV (here a 5000-row cut of a real day) is zipped on the fly, its bytes unchanged
    data, checksum = fetch(client, AGG.format(s="BTCUSDT", d="2026-01-01"))
    assert verifies(data, checksum, "BTCUSDT-aggTrades-2026-01-01.zip")
    csv = next((SPOT / "aggTrades").glob("BTCUSDT-aggTrades-2026-01-01*.csv"))
    assert member(data) == ("BTCUSDT-aggTrades-2026-01-01.csv", csv.read_bytes())
    missing = client.get(KLINES.format(s="BTCUSDT", d="2020-01-04"))
    assert missing.status_code == 404 and "<Code>NoSuchKey</Code>" in missing.text


def test_real_file_faults(archive: tuple[SimulatorHandle, httpx.Client]) -> None:
    sim, client = archive
    name = "BTCUSDT-1m-2020-01-02.zip"
    path = KLINES.format(s="BTCUSDT", d="2020-01-02")
    try:
        sim.set_faults(archive_truncate=[name])
        data, checksum = fetch(client, path)
        assert verifies(data, checksum, name)  # consistent but short, like binance-public-data#413
        assert member(data)[1].count(b"\n") == 720
        sim.set_faults(archive_corrupt=[name])
        data, checksum = fetch(client, path)
        assert not verifies(data, checksum, name) and len(data) == (SPOT / "klines" / name).stat().st_size
    finally:
        sim.reset()


def test_synthetic_klines_equal_rest(synthetic: httpx.Client) -> None:
    for symbol, day in (("BTCUSDT", "2021-03-01"), ("XRPUSDT", "2024-12-31")):
        data, checksum = fetch(synthetic, KLINES.format(s=symbol, d=day))
        assert verifies(data, checksum, f"{symbol}-1m-{day}.zip") and checksum.endswith("zip\n")
        name, csv = member(data)
        assert name == f"{symbol}-1m-{day}.csv"
        lines = csv.decode().splitlines()
        assert len(lines) == 1440 and len(lines[0].split(",")) == 12 and len(lines[0].split(",")[0]) == 13
        day_ms = (date.fromisoformat(day) - date(1970, 1, 1)).days * DAY_MS
        assert lines == rest_day(synthetic, symbol, day_ms)
        assert fetch(synthetic, KLINES.format(s=symbol, d=day))[0] == data  # deterministic


def test_2025_archives_use_microseconds(synthetic: httpx.Client) -> None:
    data, _ = fetch(synthetic, KLINES.format(s="BTCUSDT", d="2025-01-01"))
    lines = member(data)[1].decode().splitlines()
    assert lines[0].startswith("1735689600000000,") and lines[0].split(",")[6] == "1735689659999999"
    assert lines == rest_day(synthetic, "BTCUSDT", 1_735_689_600_000, micro=True)
    data, _ = fetch(synthetic, AGG.format(s="BTCUSDT", d="2025-01-01"))
    first = member(data)[1].split(b"\n", 1)[0].decode().split(",")
    assert len(first) == 8 and len(first[5]) == 16 and first[6] in ("True", "False") and first[7] == "True"
    data, _ = fetch(synthetic, AGG.format(s="BTCUSDT", d="2024-12-31"))
    assert len(member(data)[1].split(b"\n", 1)[0].decode().split(",")[5]) == 13


def test_unpublished_days_are_404(synthetic: httpx.Client) -> None:
    today = date.today()
    now = time.time()
    for days_back in (0, 1, 2):
        day = today - timedelta(days=days_back)
        start = (day - date(1970, 1, 1)).days * 86_400
        expected = 200 if start + 32 * 3600 <= now else 404
        for path in (KLINES.format(s="XRPUSDT", d=day), AGG.format(s="XRPUSDT", d=day)):
            assert synthetic.get(path).status_code == expected, (path, expected)
            assert synthetic.get(path + ".CHECKSUM").status_code == expected
    assert synthetic.get(KLINES.format(s="XRPUSDT", d="2018-05-03")).status_code == 404  # before listing
    assert synthetic.get(KLINES.format(s="DOGEUSDT", d="2021-03-01")).status_code == 404
    assert synthetic.get("/data/spot/daily/klines/BTCUSDT/1m/XRPUSDT-1m-2021-03-01.zip").status_code == 404


def test_synthetic_faults(sim: SimulatorHandle, synthetic: httpx.Client) -> None:
    name = "XRPUSDT-1m-2021-03-02.zip"
    path = KLINES.format(s="XRPUSDT", d="2021-03-02")
    good, good_checksum = fetch(synthetic, path)
    try:
        sim.set_faults(archive_corrupt=[name])
        data, checksum = fetch(synthetic, path)
        assert checksum == good_checksum and not verifies(data, checksum, name)
        sim.set_faults(archive_truncate=[name])
        data, checksum = fetch(synthetic, path)
        assert verifies(data, checksum, name) and member(data)[1].count(b"\n") == 720
        sim.set_faults(archive_missing=[name + ".CHECKSUM"])
        assert synthetic.get(path).content == good and synthetic.get(path + ".CHECKSUM").status_code == 404
        sim.set_faults(archive_missing=[name])
        assert synthetic.get(path).status_code == 404 and synthetic.get(path + ".CHECKSUM").status_code == 404
        refused = httpx.put(
            f"{sim.base_url}/_sim/faults", json={"archive_corrupt": ["XRPUSDT-1m-2021-03-02"]}
        )
        assert refused.status_code == 400 and "archive_corrupt" in refused.json()["error"]
    finally:
        sim.reset()
    assert fetch(synthetic, path) == (good, good_checksum)


def test_synthetic_agg_trades_file_equals_rest(synthetic: httpx.Client) -> None:
    data, checksum = fetch(synthetic, AGG.format(s="XRPUSDT", d="2021-03-01"))
    assert verifies(data, checksum, "XRPUSDT-aggTrades-2021-03-01.zip")
    name, csv = member(data)
    lines = csv.decode().splitlines()
    assert name == "XRPUSDT-aggTrades-2021-03-01.csv" and len(lines) > 20 * 1440
    first = int(lines[0].split(",")[0])
    rest = synthetic.get("/api/v3/aggTrades", params={"symbol": "XRPUSDT", "fromId": first, "limit": 1000})
    as_csv = [
        f"{r['a']},{r['p']},{r['q']},{r['f']},{r['l']},{r['T']},{str(r['m']).lower()},{str(r['M']).lower()}"
        for r in rest.json()
    ]
    assert as_csv == [line.replace("True", "true").replace("False", "false") for line in lines[:1000]]
    last = lines[-1].split(",")
    after = synthetic.get(
        "/api/v3/aggTrades", params={"symbol": "XRPUSDT", "fromId": int(last[0]) + 1, "limit": 1}
    )
    assert after.json()[0]["T"] >= 1_614_643_200_000 > int(last[5]) >= 1_614_556_800_000
    assert after.json()[0]["f"] == int(last[4]) + 1
