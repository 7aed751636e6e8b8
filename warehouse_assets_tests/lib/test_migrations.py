from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from warehouse_assets.lib.settings import PROJECT_DIR
from warehouse_assets.lib.warehouse import MigrationError, Warehouse, apply_migrations
from warehouse_assets_tests.conftest import sql


def test_migrations_apply_once_and_record_checksums(warehouse: Warehouse) -> None:
    with warehouse.session(migrate=False) as client:
        assert apply_migrations(client, warehouse.database) == []  # the fixture's session applied them
        rows = client.query(
            sql(
                warehouse,
                "SELECT version, name, length(checksum) FROM ${database}.schema_migrations ORDER BY version",
            )
        ).result_rows
        files = sorted(p.name for p in (PROJECT_DIR / "sql" / "migrations").glob("*.sql"))
        assert [f"{v:04d}_{n}.sql" for v, n, _ in rows] == files
        assert {length for *_, length in rows} == {64}
        tables = {r[0] for r in client.query(sql(warehouse, "SHOW TABLES FROM ${database}")).result_rows}
        assert {"klines_1m", "dead_letters", "schema_migrations"} <= tables


def test_changed_applied_migration_is_an_error(warehouse: Warehouse, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(PROJECT_DIR / "sql", sql_dir)
    first = sorted((sql_dir / "migrations").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    with warehouse.session(migrate=False) as client, pytest.raises(MigrationError, match=first.name):
        apply_migrations(client, warehouse.database, sql_dir=sql_dir)


def test_new_migration_file_is_applied_in_order(warehouse: Warehouse, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(PROJECT_DIR / "sql", sql_dir)
    (sql_dir / "migrations" / "9999_probe.sql").write_text(
        "CREATE TABLE IF NOT EXISTS ${database}.probe (x UInt8 CODEC(ZSTD(1))) ENGINE = MergeTree ORDER BY x;\n"
    )
    with warehouse.session(migrate=False) as client:
        assert apply_migrations(client, warehouse.database, sql_dir=sql_dir) == ["9999_probe.sql"]
        assert apply_migrations(client, warehouse.database, sql_dir=sql_dir) == []
        assert client.query(sql(warehouse, "EXISTS TABLE ${database}.probe")).result_rows == [(1,)]


def test_migrate_cli_reports_up_to_date(warehouse: Warehouse) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "warehouse_assets", "migrate"],
        capture_output=True,
        text=True,
        check=True,
        env={
            **__import__("os").environ,
            "WAREHOUSE_URL": f"chdb://{Path(str(warehouse.target.path))}?database=cli_{warehouse.database}",
        },
    )
    assert "applied 0001_klines_1m.sql" in out.stdout
