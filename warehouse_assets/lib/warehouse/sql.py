"""SQL lives in files under sql/. This module loads them and validates identifiers.

Files may contain ``${database}``, replaced by a validated identifier; every VALUE goes in as a
ClickHouse query parameter (``{name:Type}``), never as text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse_assets.lib.settings import PROJECT_DIR

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SQL_DIR = PROJECT_DIR / "sql"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def validate_identifier(name: str, *, what: str = "identifier") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid identifier: use letters, digits and underscores, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class SqlFile:
    name: str  # path relative to sql/, e.g. "klines/count_window.sql"
    text: str

    def render(self, **identifiers: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in identifiers:
                raise KeyError(f"sql/{self.name} needs identifier ${{{key}}}; pass it to render()")
            return validate_identifier(identifiers[key], what=key)

        return _PLACEHOLDER.sub(substitute, self.text)

    def statements(self, **identifiers: str) -> list[str]:
        """The file split into statements at semicolons that end a line (our files keep to that)."""
        rendered = self.render(**identifiers)
        parts = re.split(r";\s*(?:--[^\n]*)?\n", rendered + "\n")
        return [p.strip() for p in parts if _has_code(p)]


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


@functools.cache
def load_sql(name: str, sql_dir: Path = SQL_DIR) -> SqlFile:
    path = (sql_dir / name).resolve()
    if sql_dir.resolve() not in path.parents:
        raise ValueError(f"SQL file {name!r} is outside {sql_dir}")
    if not path.is_file():
        raise FileNotFoundError(f"SQL file sql/{name} not found under {sql_dir}")
    return SqlFile(name=name, text=path.read_text(encoding="utf-8"))


def query_count(
    client: Client, name: str, database: str, parameters: dict[str, Any], **identifiers: str
) -> int:
    """The single number a `SELECT count() ...` file returns."""
    sql = load_sql(name).render(database=database, **identifiers)
    return int(client.query(sql, parameters=parameters).result_rows[0][0])


def delete_counted(
    client: Client,
    count_file: str,
    delete_file: str,
    database: str,
    parameters: dict[str, Any],
    **identifiers: str,
) -> int:
    """Second half of an idempotent replace: delete what `count_file` counts (older versions), if any; return it."""
    older = query_count(client, count_file, database, parameters, **identifiers)
    if older:
        client.command(load_sql(delete_file).render(database=database, **identifiers), parameters=parameters)
    return older


def rebuild_finish(client: Client, database: str, table: str, parameters: dict[str, Any]) -> tuple[int, int]:
    """After a derived table's new build of a window is inserted: (rows it wrote, older rows it deleted).

    `parameters` name the window and the build (exchange, symbol, start_ms, end_ms, version_ms).
    """
    built = query_count(client, "rebuild/count_builds.sql", database, parameters, table=table)
    older = delete_counted(
        client,
        "rebuild/count_older_builds.sql",
        "rebuild/delete_older_builds.sql",
        database,
        parameters,
        table=table,
    )
    return built, older
