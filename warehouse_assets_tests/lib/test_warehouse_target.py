from pathlib import Path

import pytest

from warehouse_assets.lib.warehouse import parse_warehouse_url, validate_identifier


def test_chdb_relative_path_is_under_the_project_dir(tmp_path: Path) -> None:
    target = parse_warehouse_url("chdb://.data/warehouse", project_dir=tmp_path)
    assert target.embedded
    assert target.path == (tmp_path / ".data" / "warehouse").resolve()
    assert target.database == "market"


def test_chdb_absolute_path_and_database(tmp_path: Path) -> None:
    target = parse_warehouse_url(f"chdb://{tmp_path}/wh?database=analytics")
    assert target.path == tmp_path / "wh"
    assert target.database == "analytics"


def test_http_url_with_credentials_is_parsed_and_never_printed() -> None:
    target = parse_warehouse_url("https://reader:s3cr%40t@ch.example.org:8443/md")
    assert (target.kind, target.host, target.port, target.secure) == ("http", "ch.example.org", 8443, True)
    assert (target.username, target.password, target.database) == ("reader", "s3cr@t", "md")
    assert "s3cr" not in repr(target) and "s3cr" not in target.describe()


def test_http_defaults() -> None:
    target = parse_warehouse_url("http://localhost")
    assert (target.port, target.database, target.username) == (8123, "market", "default")


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgres://x/y", "unsupported scheme"),
        ("http://u:hunter2@/db", "has no host"),
        ("http://h/market;DROP", "not a valid identifier"),
    ],
)
def test_bad_urls_are_explained_without_secrets(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_warehouse_url(url)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("name", ["market", "_t1", "klines_1m"])
def test_valid_identifiers(name: str) -> None:
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a.b", "x; DROP TABLE y", "a" * 65, "é"])
def test_invalid_identifiers(name: str) -> None:
    with pytest.raises(ValueError):
        validate_identifier(name)
