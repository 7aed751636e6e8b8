"""The user's first minute, for real: `dagster dev` (webserver + daemon), a backfill launched over GraphQL
exactly as the UI's "Launch backfill" does, runs executed by the daemon, rows in the embedded warehouse."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from warehouse_assets.lib.settings import PROJECT_DIR
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import run_simulator
from warehouse_assets_tests.conftest import SPOT_ARCHIVE

pytestmark = pytest.mark.slow

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}"""
STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs(limit: 50) { runId status tags { key value } } }
  }
}"""
MATERIALIZATIONS = """
query Mats($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset { assetMaterializations(limit: 50) { partition runId } }
  }
}"""
ADD_PARTITION = """
mutation Add($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) { __typename }
}"""


STREAM_RUNS = """
query { runsOrError(filter: {pipelineName: "binance_stream"}) { ... on Runs { results { runId status } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ui:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def gql(self, query: str, **variables: object) -> dict:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[Ui, str]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = f"chdb://{tmp_path}/warehouse"
    # The archive-backed simulator serves the 2020 days; a synthetic one serves today's live streams.
    with run_simulator(archive_dir=SPOT_ARCHIVE) as sim, run_simulator(trades_per_day=500_000) as live:
        port = free_port()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "WAREHOUSE_URL": warehouse_url,
            "BINANCE_API_URL": sim.base_url,
            "BINANCE_ARCHIVE_URL": sim.base_url,
            "WAREHOUSE_SYMBOLS": "",
            # As in the demo: the stream supervisor runs, so the backfill shares the embedded warehouse with
            # a live binance_stream run (its writer yields the directory to whoever waits).
            "WAREHOUSE_STREAM": "true",
            "BINANCE_WS_URL": live.ws_url(""),
            "STREAM_SPOOL_DIR": str(tmp_path / "spool"),
        }
        dagster = Path(sys.executable).with_name("dagster")
        proc = subprocess.Popen(
            [
                str(dagster),
                "dev",
                "-w",
                str(PROJECT_DIR / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            client = Ui(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.http.get("/server_info").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, "dagster dev exited during start-up"
                assert time.monotonic() < deadline, "dagster dev did not serve /server_info within 120 s"
                time.sleep(1)
            yield client, warehouse_url
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def test_backfill_launched_like_the_ui_fills_the_warehouse(ui: tuple[Ui, str]) -> None:
    client, warehouse_url = ui
    repo = {"repositoryLocationName": "warehouse_assets", "repositoryName": "__repository__"}
    added = client.gql(ADD_PARTITION, repo=repo, name="binance_symbols", key="BTCUSDT")
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"

    partitions = [f"2020-01-0{d}|BTCUSDT" for d in (1, 2, 3)]
    launched = client.gql(
        LAUNCH, params={"assetSelection": [{"path": ["binance", "klines_1m"]}], "partitionNames": partitions}
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 240
    while True:
        backfill = client.gql(STATUS, id=backfill_id)["partitionBackfillOrError"]
        if backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"backfill still {backfill['status']} after 240 s"
        time.sleep(2)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    assert backfill["numPartitions"] == 3
    runs = backfill["runs"]
    assert len(runs) == 1, "three days of one symbol must be one run (single-run backfill policy)"
    assert runs[0]["status"] == "SUCCESS"

    # Nobody launches the aggregates: the aggregates_automation sensor (run by the daemon) requests them for
    # the backfilled days, and the daily aggregates of all three days appear.
    deadline = time.monotonic() + 240
    while True:
        asset = client.gql(MATERIALIZATIONS, path=["binance", "ohlcv_1d"])["assetOrError"]
        done = {m["partition"] for m in asset.get("assetMaterializations", [])}
        if set(partitions) <= done:
            break
        assert time.monotonic() < deadline, f"aggregates of the backfilled days not built after 240 s: {done}"
        time.sleep(3)

    runs = client.gql(STREAM_RUNS)["runsOrError"]["results"]
    assert [r["status"] for r in runs] == ["STARTED"], runs  # streaming all along, started by its sensor
    with Warehouse(warehouse_url, lock_timeout=60).session() as wh:  # the stream's writer yields to us
        count, days = wh.query(
            "SELECT count(), uniqExact(toDate(open_time)) FROM market.klines_1m WHERE open_time < '2021-01-01'"
        ).result_rows[0]
        daily = wh.query("SELECT count(), sum(minutes) FROM market.ohlcv_1d").result_rows[0]
        streamed, distinct, lo, hi = wh.query(
            "SELECT count(), uniqExact(trade_id), min(trade_id), max(trade_id) FROM market.trades "
            "WHERE source = 'stream'"
        ).result_rows[0]
    assert (count, days) == (4320, 3)
    assert daily == (3, 4320)
    assert streamed > 0 and streamed == distinct == hi - lo + 1  # live trades landed meanwhile, each once
