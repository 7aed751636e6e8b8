"""Two processes contending for one embedded data directory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from warehouse_assets.lib.warehouse import Warehouse, WarehouseLockedError

HOLDER = """
import sys, time
from warehouse_assets.lib.warehouse import Warehouse
wh = Warehouse(sys.argv[1], lock_timeout=30)
with wh.session() as client:
    client.query("SELECT 1")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def _hold(url: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.mark.slow
def test_second_process_waits_for_the_lock_then_succeeds(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/wh"
    holder = _hold(url, 3.0)
    try:
        started = time.monotonic()
        with Warehouse(url, lock_timeout=60).session() as client:
            waited = time.monotonic() - started
            assert client.query("SELECT count() FROM market.klines_1m").result_rows == [(0,)]
        assert holder.poll() is not None, "we opened while the other process still held the directory"
        assert 1.5 < waited < 30, waited
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_past_the_deadline_the_error_names_the_directory(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/wh"
    holder = _hold(url, 20.0)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError) as info, Warehouse(url, lock_timeout=1.5).session():
            pass
        elapsed = time.monotonic() - started
        message = str(info.value)
        assert str(tmp_path / "wh") in message
        assert "held by another process" in message and "WAREHOUSE_LOCK_TIMEOUT" in message
        assert 1.0 < elapsed < 5.0, elapsed
    finally:
        holder.kill()
        holder.wait()
    # The killed holder left its lock behind only as long as it lived: we can open now.
    with Warehouse(url, lock_timeout=30).session() as client:
        assert client.query("SELECT 1").result_rows == [(1,)]
