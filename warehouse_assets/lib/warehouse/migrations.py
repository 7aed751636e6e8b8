"""Versioned schema migrations: sql/migrations/NNNN_name.sql applied in order, recorded with checksums.

Re-applying is a no-op; an applied file whose content has changed is an error (write a new file).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from warehouse_assets.lib.warehouse.sql import SQL_DIR, SqlFile, load_sql, validate_identifier

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def file(self) -> SqlFile:
        return SqlFile(name=f"migrations/{self.path.name}", text=self.path.read_text(encoding="utf-8"))


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted((sql_dir / "migrations").glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path} must be named NNNN_snake_case.sql")
        found.append(
            Migration(int(m.group(1)), m.group(2), path, hashlib.sha256(path.read_bytes()).hexdigest())
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number in {sql_dir / 'migrations'}")
    return found


def applied(client: Client, database: str) -> dict[int, tuple[str, str]]:
    sql = load_sql("meta/applied_migrations.sql").render(database=database)
    return {int(v): (n, c) for v, n, c in client.query(sql).result_rows}


def apply_migrations(client: Client, database: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations in order; return the names applied now."""
    database = validate_identifier(database, what="database")
    for statement in load_sql("meta/bootstrap.sql").statements(database=database):
        client.command(statement)
    done = applied(client, database)
    newly: list[str] = []
    for mig in discover(sql_dir):
        if mig.version in done:
            name, checksum = done[mig.version]
            if checksum != mig.checksum:
                raise MigrationError(
                    f"migration {mig.path.name} was applied with checksum {checksum[:12]}… but the file now has "
                    f"{mig.checksum[:12]}…: applied migrations must not change; add a new migration file instead"
                )
            continue
        for statement in mig.file.statements(database=database):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations",
            [[mig.version, mig.name, mig.checksum]],
            column_names=["version", "name", "checksum"],
        )
        log.info("applied migration %s", mig.path.name)
        newly.append(mig.path.name)
    return newly
