"""Parse WAREHOUSE_URL into where the warehouse is: an embedded chDB directory or a ClickHouse server.

- ``chdb:///absolute/path`` or ``chdb://relative/path`` (relative to the project directory)
- ``http://user:password@host:8123/database`` or ``https://...`` (database defaults to ``market``)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from warehouse_assets.lib.settings import PROJECT_DIR, redact_url
from warehouse_assets.lib.warehouse.sql import validate_identifier

DEFAULT_DATABASE = "market"


@dataclass(frozen=True)
class WarehouseTarget:
    kind: str  # "chdb" or "http"
    database: str
    path: Path | None = None  # chdb only
    host: str = ""
    port: int = 0
    secure: bool = False
    username: str = "default"
    password: str = field(default="", repr=False)  # never printed

    @property
    def embedded(self) -> bool:
        return self.kind == "chdb"

    def describe(self) -> str:
        """A log-safe description (no password)."""
        if self.embedded:
            return f"embedded chDB at {self.path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        return f"ClickHouse server {scheme}://{self.host}:{self.port} (database {self.database})"


def parse_warehouse_url(url: str, project_dir: Path = PROJECT_DIR) -> WarehouseTarget:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "chdb":
        # chdb:///abs -> netloc "" and path "/abs"; chdb://rel/dir -> netloc "rel" and path "/dir"
        raw = unquote(parts.path if not parts.netloc else parts.netloc + parts.path)
        if not raw:
            raise ValueError(
                f"WAREHOUSE_URL={url!r} names no directory; use chdb:///absolute/path or chdb://.data/warehouse"
            )
        path = Path(raw)
        if not path.is_absolute():
            path = project_dir / path
        database = validate_identifier(
            query.get("database", DEFAULT_DATABASE), what="database in WAREHOUSE_URL"
        )
        return WarehouseTarget(kind="chdb", database=database, path=path.resolve())
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(
                f"WAREHOUSE_URL={redact_url(url)!r} has no host; use http://user:password@host:8123/database"
            )
        secure = parts.scheme == "https"
        database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
        return WarehouseTarget(
            kind="http",
            database=validate_identifier(database, what="database in WAREHOUSE_URL"),
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            secure=secure,
            username=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
        )
    raise ValueError(
        f"WAREHOUSE_URL={redact_url(url)!r} has unsupported scheme {parts.scheme!r}; "
        "use chdb:///path for the embedded warehouse or http(s)://user:password@host:8123/database for a server"
    )
