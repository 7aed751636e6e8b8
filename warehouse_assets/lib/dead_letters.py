"""Dead letters: exchange messages or rows that were refused, kept verbatim with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

TABLE = "dead_letters"
COLUMNS = ["exchange", "source", "kind", "symbol", "reason", "payload"]


@dataclass(frozen=True)
class DeadLetter:
    exchange: str
    source: str
    kind: str
    symbol: str
    reason: str
    payload: str


def record_dead_letters(client: Client, database: str, letters: Sequence[DeadLetter]) -> None:
    if letters:
        rows = [[getattr(letter, c) for c in COLUMNS] for letter in letters]
        client.insert(f"{database}.{TABLE}", rows, column_names=COLUMNS)
