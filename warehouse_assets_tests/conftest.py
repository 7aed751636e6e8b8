"""Fixtures that start real things: an embedded ClickHouse warehouse, the exchange simulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from warehouse_assets.lib.warehouse import SqlFile, Warehouse

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPOT_ARCHIVE = SHARED_DATA / "binance_vision" / "spot"
SPOT_KLINES_CSV = SHARED_DATA / "binance_vision_extracted" / "spot" / "klines"


@pytest.fixture(scope="session")
def warehouse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded data directory for the test process; tests isolate by database."""
    return tmp_path_factory.mktemp("warehouse")


@pytest.fixture
def warehouse_url(warehouse_dir: Path) -> str:
    return f"chdb://{warehouse_dir}?database=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def warehouse(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    """A fresh, migrated database in the shared embedded warehouse; WAREHOUSE_URL points at it."""
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    wh = Warehouse(warehouse_url, lock_timeout=30)
    with wh.session():
        pass
    yield wh


def sql(warehouse: Warehouse, text: str) -> str:
    """Test SQL with `${database}` rendered through the same identifier validation as the files in sql/."""
    return SqlFile(name="<test>", text=text).render(database=warehouse.database)
