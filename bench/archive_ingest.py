"""Benchmark: one day of about 2 million aggregate trades from the simulator's data.binance.vision archive
into `market.trades`, next to the raw ceiling measured in the same run.

- whole path: what `trades_backfill` does for an archived day: the day's id range from REST (2 requests),
  the zip downloaded and sha256-verified against its .CHECKSUM, ClickHouse parsing it through a pipe into
  a stage, the stage checked (ids contiguous, trade-id chain, every trade inside the day, the REST ids),
  its parts attached to `trades`. The candles rebuild that follows is reported on its own.
- raw ceiling: ClickHouse parsing the same CSV, already unzipped on local disk, straight into an
  identical table (`CREATE TABLE ... AS trades`) with the same conversions and no checks; once with the
  default insert settings and once with optimize_on_insert=0, as the whole path's stage loads.

Each is run `--repeat` times into a fresh database, alternating; the median is reported. Also prints
bytes per row on disk per column after `OPTIMIZE FINAL`. Prints JSON (machine, date, inputs).

    .venv/bin/python bench/archive_ingest.py [--trades-per-day 2000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine_info import machine  # bench/ is on sys.path when a script here runs

from warehouse_assets.lib import trades_store
from warehouse_assets.lib.binance.archive import ArchiveClient
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.klines_backfill import day_start_ms
from warehouse_assets.lib.records import DAY_MS
from warehouse_assets.lib.trades_backfill import day_id_range
from warehouse_assets.lib.warehouse import SqlFile, Warehouse
from warehouse_assets.simulator.testing import run_simulator

SYMBOL = "BTCUSDT"
DAY = date(2024, 3, 1)
RAW_LOAD = SqlFile(
    name="<bench raw ceiling>",
    text="""INSERT INTO ${database}.${table}
    (exchange, symbol, trade_id, price, qty, first_trade_id, last_trade_id, ts, is_buyer_maker, source)
SELECT 'binance', {symbol:String}, agg_trade_id, price, quantity, first_trade_id, last_trade_id,
       fromUnixTimestamp64Micro(if(transact_time > 100000000000000, transact_time, transact_time * 1000), 'UTC'),
       is_buyer_maker, 'archive'
FROM file({path:String}, 'CSV', 'agg_trade_id UInt64, price Decimal(38, 18), quantity Decimal(38, 18),
     first_trade_id UInt64, last_trade_id UInt64, transact_time Int64, is_buyer_maker Bool, is_best_match Bool')""",
)
TWIN = SqlFile(name="<bench twin>", text="CREATE TABLE ${database}.${table} AS ${database}.trades")
COUNT = SqlFile(name="<bench count>", text="SELECT count() FROM ${database}.${table}")
OPTIMIZE = SqlFile(name="<bench optimize>", text="OPTIMIZE TABLE ${database}.trades FINAL")
COLUMN_BYTES = """SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns
WHERE database = {database:String} AND table = {table:String} ORDER BY position"""


async def whole_path(wh: Warehouse, base_url: str, scratch: Path) -> dict[str, float | int]:
    start_ms = day_start_ms(DAY)
    t0 = time.perf_counter()
    async with BinanceRestClient(base_url) as rest, ArchiveClient(base_url) as archive:
        # As trades_backfill does: the day's ids from REST while the file downloads and is verified.
        expected, path = await asyncio.gather(
            day_id_range(rest, SYMBOL, DAY),
            archive.fetch_verified(archive.daily_agg_trades_url(SYMBOL, DAY), scratch),
        )
    t2 = time.perf_counter()
    with wh.session() as client:
        t3 = time.perf_counter()
        write = trades_store.replace_window_from_csv(
            client, wh.database, embedded=True, path=path, exchange="binance", symbol=SYMBOL,
            start_ms=start_ms, end_ms=start_ms + DAY_MS, expected_ids=expected,
        )  # fmt: skip
        t4 = time.perf_counter()
        candles = trades_store.rebuild_candles(
            client,
            wh.database,
            exchange="binance",
            symbol=SYMBOL,
            start_ms=start_ms,
            end_ms=start_ms + DAY_MS,
        )
        t5 = time.perf_counter()
    path.unlink()
    seconds = (t2 - t0) + (t4 - t3)  # without opening the session (shared with the ceiling)
    return {
        "rows": write.inserted,
        "seconds": round(seconds, 3),
        "rows_per_second": round(write.inserted / seconds),
        "rest_ids_download_and_verify_s": round(t2 - t0, 3),
        "stage_check_attach_s": round(t4 - t3, 3),
        "candles_rebuild_s": round(t5 - t4, 3),
        "candles": candles.built,
    }


def raw_ceiling(
    wh: Warehouse, csv_path: Path, table: str, settings: dict[str, int]
) -> dict[str, float | int]:
    with wh.session() as client:
        client.command(TWIN.render(database=wh.database, table=table))
        t0 = time.perf_counter()
        client.command(
            RAW_LOAD.render(database=wh.database, table=table),
            parameters={"symbol": SYMBOL, "path": str(csv_path)},
            settings=settings,
        )
        seconds = time.perf_counter() - t0
        rows = int(client.query(COUNT.render(database=wh.database, table=table)).result_rows[0][0])
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds)}


def bytes_per_row(wh: Warehouse) -> dict[str, float]:
    with wh.session() as client:
        client.command(OPTIMIZE.render(database=wh.database))
        rows = int(client.query(COUNT.render(database=wh.database, table="trades")).result_rows[0][0])
        columns = client.query(
            COLUMN_BYTES, parameters={"database": wh.database, "table": "trades"}
        ).result_rows
    per_column = {name: round(compressed / rows, 3) for name, compressed, _ in columns}
    return {"total": round(sum(per_column.values()), 3), **per_column}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades-per-day", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    whole: list[dict[str, float | int]] = []
    ceiling: list[dict[str, float | int]] = []
    ceiling_fast: list[dict[str, float | int]] = []
    with run_simulator(trades_per_day=args.trades_per_day) as sim:

        async def warm() -> Path:  # the simulator builds and caches the zip on first request
            async with ArchiveClient(sim.base_url) as archive:
                return await archive.fetch_verified(
                    archive.daily_agg_trades_url(SYMBOL, DAY), scratch / "warm"
                )

        zip_path = asyncio.run(warm())
        csv_path = scratch / "day.csv"
        with (
            zipfile.ZipFile(zip_path) as archive,
            archive.open(archive.namelist()[0]) as src,
            csv_path.open("wb") as dst,
        ):
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        wh_dir = scratch / "warehouse"
        for i in range(args.repeat):
            wh = Warehouse(f"chdb://{wh_dir}?database=bench_{uuid.uuid4().hex[:8]}")
            with wh.session():
                pass  # migrations, engine start
            whole.append(asyncio.run(whole_path(wh, sim.base_url, scratch / f"run{i}")))
            ceiling.append(raw_ceiling(wh, csv_path, "raw_ceiling", {}))
            # The stage loads with optimize_on_insert=0 (see trades_store): the ceiling with it too.
            ceiling_fast.append(
                raw_ceiling(wh, csv_path, "raw_ceiling_no_insert_dedup", {"optimize_on_insert": 0})
            )
        storage = bytes_per_row(wh)

    def median(results: list[dict[str, float | int]], key: str) -> float:
        return statistics.median(float(r[key]) for r in results)

    report = {
        "benchmark": "archive_ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "inputs": {"symbol": SYMBOL, "day": DAY.isoformat(), "trades_per_day": args.trades_per_day,
                   "zip_bytes": zip_path.stat().st_size, "csv_bytes": csv_path.stat().st_size, "repeat": args.repeat},
        "whole_path_rows_per_second": median(whole, "rows_per_second"),
        "raw_ceiling_rows_per_second": median(ceiling, "rows_per_second"),
        "raw_ceiling_no_insert_dedup_rows_per_second": median(ceiling_fast, "rows_per_second"),
        "whole_path_share_of_ceiling": round(median(whole, "rows_per_second") / median(ceiling, "rows_per_second"), 3),
        "whole_path_share_of_ceiling_no_insert_dedup": round(
            median(whole, "rows_per_second") / median(ceiling_fast, "rows_per_second"), 3
        ),
        "whole_path_runs": whole,
        "raw_ceiling_runs": ceiling,
        "raw_ceiling_no_insert_dedup_runs": ceiling_fast,
        "bytes_per_row_on_disk": storage,
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
