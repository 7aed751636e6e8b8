"""Benchmark: a long klines backfill through the `binance/klines_1m` asset, fetching and storing.

One year of 1m klines for three symbols from the synthetic simulator into a fresh embedded
warehouse, one Dagster run per symbol (what a single-run backfill launches). Prints JSON: rows/s end
to end and during fetch+store, each run's phases (start-up, fetch+store, Dagster's per-partition
bookkeeping), requests, weight used in every rate-limit window wholly inside a fetch phase and its
share of the budget, 429/418 count, peak RSS.

The default budget is 1000 weight per 10 s window: the same rate as Binance's 6000 per minute, in
windows short enough that a ~35 s run spans several full ones. Archives are off (KLINES_ARCHIVE=false):
whole published days would otherwise come from data.binance.vision at no request weight. `--window-seconds 60 --weight-limit 6000`
uses Binance's exact windows.

    .venv/bin/python bench/backfill_klines.py [--days 365] [--symbols 3] [--weight-limit 1000] [--window-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from machine_info import machine  # bench/ is on sys.path when a script here runs

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]


def runs(symbols: list[str], first: date, last: date, per_run: int | None) -> list[tuple[str, date, date]]:
    """The runs a UI backfill launches under the asset's policy: per symbol, ranges of at most `per_run` days."""
    span = per_run or (last - first).days + 1
    out = []
    for symbol in symbols:
        start = first
        while start <= last:
            end = min(last, start + timedelta(days=span - 1))
            out.append((symbol, start, end))
            start = end + timedelta(days=1)
    return out


def run_phases(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds of one run: start-up, fetch+store (step start to the last batch written), Dagster bookkeeping."""
    records = instance.all_logs(run_id)
    t0 = records[0].timestamp
    step_start = next(
        r.timestamp for r in records if r.dagster_event and r.dagster_event.event_type_value == "STEP_START"
    )
    last_write = max(r.timestamp for r in records if "rows written" in (r.user_message or ""))
    end = records[-1].timestamp
    return {
        "startup": round(step_start - t0, 2),
        "fetch_and_store": round(last_write - step_start, 2),
        "dagster_bookkeeping": round(end - last_write, 2),
    }


def fetch_windows(weight_by_window: dict[str, int], window_ms: int) -> list[int]:
    """Weights of windows wholly inside a fetch phase: contiguous busy windows minus the first and last of each."""
    starts = sorted(int(k) for k in weight_by_window)
    runs: list[list[int]] = []
    for start in starts:
        if runs and start - runs[-1][-1] == window_ms:
            runs[-1].append(start)
        else:
            runs.append([start])
    return [weight_by_window[str(s)] for run in runs for s in run[1:-1]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--symbols", type=int, default=3)
    parser.add_argument("--first-day", default="2023-01-01")
    parser.add_argument("--weight-limit", type=int, default=1000)
    parser.add_argument("--window-seconds", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WAREHOUSE_URL"] = f"chdb://{tmp}/warehouse"
        os.environ["KLINES_ARCHIVE"] = "false"  # this benchmark measures the REST path and its weight budget
        from warehouse_assets.definitions import defs as load_defs
        from warehouse_assets.defs.klines.assets import BACKFILL_POLICY
        from warehouse_assets.lib.ratelimit import budget_for
        from warehouse_assets.lib.warehouse import Warehouse
        from warehouse_assets.simulator.testing import run_simulator

        symbols = SYMBOLS[: args.symbols]
        first = date.fromisoformat(args.first_day)
        last = first + timedelta(days=args.days - 1)
        with run_simulator(weight_limit=args.weight_limit, window_seconds=args.window_seconds) as sim:
            os.environ["BINANCE_API_URL"] = sim.base_url
            defs = load_defs()
            asset = defs.resolve_assets_def(dg.AssetKey(["binance", "klines_1m"]))
            with dg.instance_for_test() as instance:
                instance.add_dynamic_partitions("binance_symbols", symbols)
                with Warehouse().session():
                    pass  # create the schema outside the timed part
                started = time.perf_counter()
                phases = []
                for symbol, run_first, run_last in runs(
                    symbols, first, last, BACKFILL_POLICY.max_partitions_per_run
                ):
                    result = dg.materialize(
                        [asset],
                        instance=instance,
                        tags={
                            "dagster/asset_partition_range_start": f"{run_first.isoformat()}|{symbol}",
                            "dagster/asset_partition_range_end": f"{run_last.isoformat()}|{symbol}",
                        },
                        raise_on_error=True,
                    )
                    assert result.success
                    phases.append(run_phases(instance, result.run_id))
                elapsed = time.perf_counter() - started
            stats = sim.stats()
            client_stats = budget_for(sim.base_url).stats()
        with Warehouse().session() as client:
            rows = client.query(
                "SELECT count(), uniqExact(symbol, open_time) FROM market.klines_1m"
            ).result_rows[0]

    window_ms = args.window_seconds * 1000
    weight_by_window = {str(k): int(v) for k, v in stats["weight_by_window"].items()}
    per_window = fetch_windows(weight_by_window, window_ms)
    fetch_seconds = sum(p["fetch_and_store"] for p in phases)
    report = {
        "benchmark": "backfill_klines",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "inputs": {
            "symbols": symbols,
            "days": args.days,
            "first_day": first.isoformat(),
            "budget": {"weight_limit": args.weight_limit, "window_seconds": args.window_seconds},
            "source": "synthetic simulator over loopback",
        },
        "rows": rows[0],
        "distinct_minutes": rows[1],
        "seconds": round(elapsed, 2),
        "rows_per_second_end_to_end": round(rows[0] / elapsed),
        "requests": stats["requests"],
        "status_counts": stats["status_counts"],
        "rows_per_second_fetch_and_store": round(rows[0] / fetch_seconds),
        "phases_per_run": phases,
        "weight_total": sum(weight_by_window.values()),
        "weight_per_full_fetch_window": per_window,
        "budget_used_per_full_fetch_window": [round(w / args.weight_limit, 4) for w in per_window],
        "budget_used_mean": round(sum(per_window) / (len(per_window) * args.weight_limit), 4)
        if per_window
        else None,
        "weight_per_minute_while_fetching": round(sum(per_window) / (len(per_window) * window_ms / 60_000))
        if per_window
        else None,
        "client_waited_seconds": round(getattr(client_stats, "waited_seconds", 0.0), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
