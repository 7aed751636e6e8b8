"""`warehouse_health`: per table rows, bytes on disk, compression ratio and active parts (system.parts),
as numeric metadata so the asset page's Plots show how the warehouse grows. Refreshed nightly."""

from typing import Any

import dagster as dg

from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib import quality

WAREHOUSE_HEALTH = dg.AssetKey(["warehouse_health"])


@dg.asset(
    key=WAREHOUSE_HEALTH,
    kinds={"clickhouse"},
    owners=["team:market-data"],
    group_name="quality",
    description=(
        "Per table of the warehouse: rows, bytes on disk, compression ratio (uncompressed / compressed), "
        "active parts and partitions, from system.parts. Many small active parts mean merges are behind; "
        "a falling compression ratio means a codec no longer fits the data."
    ),
)
def warehouse_health(warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    with wh.session() as client:
        tables = quality.table_health(client, wh.database)
    metadata: dict[str, Any] = {"warehouse": wh.describe(), "tables": len(tables)}
    for t in tables:
        metadata[f"{t.table}/rows"] = t.rows
        metadata[f"{t.table}/bytes_on_disk"] = t.bytes_on_disk
        metadata[f"{t.table}/compression_ratio"] = round(t.compression_ratio, 3)
        metadata[f"{t.table}/active_parts"] = t.active_parts
        metadata[f"{t.table}/bytes_per_row"] = round(t.bytes_per_row, 3)
    metadata["total_bytes_on_disk"] = sum(t.bytes_on_disk for t in tables)
    metadata["summary"] = dg.MetadataValue.md(
        "| table | rows | bytes on disk | B/row | compression | active parts | partitions |\n"
        "|---|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {t.table} | {t.rows:,} | {t.bytes_on_disk:,} | {t.bytes_per_row:.2f} | {t.compression_ratio:.2f} | "
            f"{t.active_parts} | {t.partitions} |"
            for t in tables
        )
    )
    return dg.MaterializeResult(metadata=metadata)
