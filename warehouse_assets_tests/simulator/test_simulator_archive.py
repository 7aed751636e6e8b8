"""Archive mode: real data.binance.vision files served over HTTP as their exact strings."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPOT = DATA / "binance_vision" / "spot"
KLINES = SPOT / "klines"
MICRO = {"X-MBX-TIME-UNIT": "MICROSECOND"}


def csv_lines(path: Path) -> list[str]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            return z.read(z.namelist()[0]).decode().splitlines()
    return path.read_text().splitlines()


def as_csv(row: list) -> str:
    return ",".join(str(v) for v in row)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    if not SPOT.is_dir():
        pytest.fail(
            f"the shared sample data is not at {SPOT}: run the tests from a checkout with ../shared beside it"
        )
    with run_simulator(archive_dir=SPOT) as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=10) as c:
        yield c


def get_all(
    client: httpx.Client, symbol: str, interval: str, start: int, end: int, **kw: object
) -> list[list]:
    rows: list[list] = []
    while True:
        params = {"symbol": symbol, "interval": interval, "startTime": start, "endTime": end, "limit": 1000}
        page = client.get("/api/v3/klines", params=params, **kw).json()  # type: ignore[arg-type]
        rows += page
        if len(page) < 1000:
            return rows
        start = page[-1][0] + 1


def test_listed_symbols_are_the_archive_symbols(client: httpx.Client) -> None:
    info = client.get("/api/v3/exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == ["ADABTC", "BTCUSDT", "ETHUSDT"]
    btc = {f["filterType"]: f for f in info["symbols"][1]["filters"]}
    assert btc["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert (
        client.get("/api/v3/klines", params={"symbol": "SOLUSDT", "interval": "1m"}).json()["code"] == -1121
    )


@pytest.mark.parametrize(
    ("symbol", "files"),
    [("BTCUSDT", ["BTCUSDT-1m-2020-01-01.zip", "BTCUSDT-1m-2020-01-02.zip", "BTCUSDT-1m-2020-01-03.zip"]),
     ("ETHUSDT", ["ETHUSDT-1m-2022-08-14.zip", "ETHUSDT-1m-2022-08-15.zip"])],
)  # fmt: skip
def test_minute_klines_equal_the_csv_strings(client: httpx.Client, symbol: str, files: list[str]) -> None:
    expected = [line for name in files for line in csv_lines(KLINES / name)]
    start, end = int(expected[0].split(",")[0]), int(expected[-1].split(",")[0])
    rows = get_all(client, symbol, "1m", start - 3_600_000, end + 3_600_000)
    assert len(rows) == len(expected) == 1440 * len(files)
    assert [as_csv(r) for r in rows] == expected
    assert rows[0][1] == expected[0].split(",")[1]  # e.g. "7195.24000000": a string, never a float


def test_microsecond_file_in_both_units(client: httpx.Client) -> None:
    expected = csv_lines(KLINES / "BTCUSDT-1h-2026-05-08.zip")
    first_us = int(expected[0].split(",")[0])
    assert first_us == 1_778_198_400_000_000
    params = {"symbol": "BTCUSDT", "interval": "1h", "startTime": first_us, "limit": 24}
    micro = client.get("/api/v3/klines", params=params, headers=MICRO).json()
    assert [as_csv(r) for r in micro] == expected
    milli = client.get("/api/v3/klines", params=params).json()
    assert [r[0] for r in milli] == [r[0] // 1000 for r in micro]
    assert milli[0][6] == 1_778_201_999_999
    assert [r[1:6] + r[7:] for r in milli] == [r[1:6] + r[7:] for r in micro]


def test_millisecond_file_in_microseconds(client: httpx.Client) -> None:
    first = csv_lines(KLINES / "BTCUSDT-1m-2020-01-01.zip")[0].split(",")
    row = client.get(
        "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1, "startTime": first[0]},
        headers=MICRO,
    ).json()[0]
    assert row[0] == int(first[0]) * 1000 and row[6] == int(first[6]) * 1000 + 999
    assert row[1] == first[1]


def test_real_gaps_stay_gaps(client: httpx.Client) -> None:
    start = 1_613_008_800_000  # 2021-02-11 02:00 UTC; the 04:00 hour is missing in the file
    rows = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h", "startTime": start, "limit": 4}
    ).json()
    assert [r[0] for r in rows] == [start, start + 3_600_000, start + 3 * 3_600_000, start + 4 * 3_600_000]
    assert rows[1][6] == 1_613_014_854_773  # the cut-short maintenance kline, as published
    empty = {
        "symbol": "ETHUSDT",
        "interval": "1m",
        "startTime": 1_600_000_000_000,
        "endTime": 1_600_100_000_000,
    }
    assert client.get("/api/v3/klines", params=empty).json() == []
    assert client.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1h"}).json() == []


def test_newest_and_end_only(client: httpx.Client) -> None:
    last_lines = csv_lines(KLINES / "ETHUSDT-1m-2022-08-15.zip")
    newest = client.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 3}).json()
    assert [as_csv(r) for r in newest] == last_lines[-3:]
    end = int(last_lines[9].split(",")[0]) + 30_000
    rows = client.get(
        "/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "endTime": end, "limit": 4}
    ).json()
    assert [as_csv(r) for r in rows] == last_lines[6:10]
    huge = {"symbol": "ETHUSDT", "interval": "1m", "endTime": "99999999999999999999", "limit": 2}
    assert [as_csv(r) for r in client.get("/api/v3/klines", params=huge).json()] == last_lines[-2:]


def test_real_layout_header_and_flat_files(tmp_path: Path) -> None:
    futures = DATA / "binance_vision" / "futures_um" / "klines" / "BTCUSDT-1m-2022-09-05.zip"
    layout = tmp_path / "daily" / "klines" / "BTCUSDT" / "1m"
    layout.mkdir(parents=True)
    shutil.copy(futures, layout / futures.name)
    (tmp_path / "klines").mkdir()
    shutil.copy(KLINES / "ADABTC-1m-2021-11-27_first_rows_only.csv", tmp_path / "klines")
    (tmp_path / "klines" / "BTCUSDT-aggTrades-2026-01-01.csv").write_text("1,2,3\n")  # ignored
    lines = csv_lines(futures)
    assert lines[0].startswith("open_time")
    with run_simulator(archive_dir=tmp_path) as sim:
        rows = httpx.get(
            f"{sim.base_url}/api/v3/klines",
            params={"symbol": "BTCUSDT", "interval": "1m", "startTime": 0, "limit": 2},
        ).json()
        assert [as_csv(r) for r in rows] == lines[1:3]  # header skipped, "19992.70" kept as written
        ada = httpx.get(
            f"{sim.base_url}/api/v3/klines", params={"symbol": "ADABTC", "interval": "1m", "startTime": 0}
        ).json()
        assert [as_csv(r) for r in ada] == csv_lines(KLINES / "ADABTC-1m-2021-11-27_first_rows_only.csv")


def test_startup_failure_names_the_problem(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="does not exist") as error,
        run_simulator(archive_dir=tmp_path / "nope"),
    ):
        pass
    assert "exited with code 2" in str(error.value)
    with pytest.raises(RuntimeError, match="no kline files"), run_simulator(archive_dir=tmp_path):
        pass
