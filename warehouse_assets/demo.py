"""`make demo`: the offline product on one laptop.

Starts the Binance simulator on 127.0.0.1, points the warehouse at the embedded chDB directory,
registers the demo symbols and runs the Dagster webserver and daemon (`dagster dev`) on 127.0.0.1, with the
nightly schedules, the streaming supervisor and gap repair on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from warehouse_assets.lib import settings

DEMO_SYMBOLS = "BTCUSDT,ETHUSDT"


def _start_simulator(port: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "warehouse_assets.simulator", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "listening on" not in line:
        proc.terminate()
        raise SystemExit(
            f"the exchange simulator did not start on 127.0.0.1:{port} (is the port taken?): {line!r}"
        )
    return proc, line.rsplit(" ", 1)[-1]


def run_demo(*, ui_port: int, simulator_port: int) -> int:
    project = settings.PROJECT_DIR
    home = project / ".dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(project / "dagster.yaml", home / "dagster.yaml")

    simulator, api_url = _start_simulator(simulator_port)
    env = dict(os.environ)
    env.setdefault("WAREHOUSE_SYMBOLS", DEMO_SYMBOLS)
    env.update({"BINANCE_API_URL": api_url, "BINANCE_ARCHIVE_URL": api_url, "DAGSTER_HOME": str(home)})
    env.setdefault("WAREHOUSE_URL", settings.DEFAULTS["WAREHOUSE_URL"])
    env.setdefault("WAREHOUSE_SCHEDULES", "true")  # the nightly schedules start running
    env.setdefault("BINANCE_WS_URL", "ws" + api_url.removeprefix("http"))  # the simulator's live streams
    env.setdefault(
        "WAREHOUSE_STREAM", "true"
    )  # binance_stream_supervisor and stream_gap_repair start running
    print(f"exchange simulator: {api_url} (synthetic Binance spot market)")
    try:
        subprocess.run([sys.executable, "-m", "warehouse_assets", "migrate"], env=env, check=True)
        _register_symbols(env)
        print(
            f"\n  Dagster UI: http://127.0.0.1:{ui_port}\n"
            "  Assets > binance/klines_1m > Materialize... > pick dates and symbols > Launch backfill.\n"
            "  The aggregates (binance/ohlcv_1h, ohlcv_1d) follow by themselves (aggregates_automation sensor);\n"
            "  the nightly schedules (Automation tab) load yesterday at 00:10 UTC.\n"
            "  Then binance/agg_trades with binance/candles_1m: trades, candles, and checks against klines.\n"
            "  Live: binance_stream (Runs tab) streams trades and closed klines of the registered symbols,\n"
            "  restarted by binance_stream_supervisor; stream_gap_repair fills holes from REST. The stream\n"
            "  hands the embedded warehouse to any run that waits for it, so backfills run alongside.\n"
            f"  Warehouse: {env['WAREHOUSE_URL']} (stop the demo to query it from another process)\n"
        )
        dagster = Path(sys.executable).with_name("dagster")
        ui = subprocess.Popen(
            [
                str(dagster),
                "dev",
                "-w",
                str(project / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(ui_port),
            ],
            env=env,
            cwd=project,
        )
        try:
            return ui.wait()
        except KeyboardInterrupt:
            ui.send_signal(signal.SIGINT)
            return ui.wait()
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


def _register_symbols(env: dict[str, str]) -> None:
    """Add the demo symbols as partitions right away (the sensor would within a minute)."""
    code = (
        "import asyncio, dagster as dg\n"
        "from warehouse_assets.lib import settings\n"
        "from warehouse_assets.defs.symbols.sensors import listed_symbols\n"
        "ok, bad = asyncio.run(listed_symbols(settings.configured_symbols()))\n"
        "for reason in bad.values(): print(reason)\n"
        "instance = dg.DagsterInstance.get()\n"
        "instance.add_dynamic_partitions('binance_symbols', ok)\n"
        "print('registered symbols: ' + ', '.join(ok))\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
