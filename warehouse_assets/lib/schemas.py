"""Pandera models of the warehouse's tables: types, ranges and OHLC invariants, one model per table.

Rows are validated as pandas frames backed by Arrow (`pd.ArrowDtype`): decimals stay exact Decimal(38, 18)
and the checks run in Arrow's kernels, so validating a day of klines costs milliseconds, not a Python
object per value. Used before rows are written (klines from the exchange) and by the asset checks (rows
read back from the warehouse). `validate` returns the failure cases instead of raising, capped, so a check
can show them as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

DECIMAL = pd.ArrowDtype(pa.decimal128(38, 18))
TIME_MS = pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))
TIME_US = pd.ArrowDtype(pa.timestamp("us", tz="UTC"))
STRING = pd.ArrowDtype(pa.string())
UINT64 = pd.ArrowDtype(pa.uint64())
MINUTE = pd.Timedelta(minutes=1)
_ZERO = 0


class _Ohlcv(pa_schema.DataFrameModel):
    """Columns and invariants every candle table shares."""

    exchange: Series[STRING] = pa_schema.Field(str_length={"min_value": 1})  # type: ignore[valid-type]
    symbol: Series[STRING] = pa_schema.Field(str_matches=r"^[A-Z0-9_]{2,40}$")  # type: ignore[valid-type]
    open_time: Series[TIME_MS]  # type: ignore[valid-type]
    open: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    high: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    low: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    close: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    volume: Series[DECIMAL] = pa_schema.Field(ge=_ZERO)  # type: ignore[valid-type]
    quote_volume: Series[DECIMAL] = pa_schema.Field(ge=_ZERO)  # type: ignore[valid-type]
    trades: Series[UINT64]  # type: ignore[valid-type]
    taker_buy_base_volume: Series[DECIMAL] = pa_schema.Field(ge=_ZERO)  # type: ignore[valid-type]
    taker_buy_quote_volume: Series[DECIMAL] = pa_schema.Field(ge=_ZERO)  # type: ignore[valid-type]

    class Config:
        strict = "filter"  # extra columns (source, versions) are not the model's business
        coerce = False

    @pa_schema.dataframe_check(name="low <= open, close <= high", element_wise=False)
    def ohlc(cls, df: pd.DataFrame) -> pd.Series:
        return (
            (df["low"] <= df["open"])
            & (df["open"] <= df["high"])
            & (df["low"] <= df["close"])
            & (df["close"] <= df["high"])
        )

    @pa_schema.dataframe_check(name="taker buy volumes <= volumes")
    def taker_within_volume(cls, df: pd.DataFrame) -> pd.Series:
        return (df["taker_buy_base_volume"] <= df["volume"]) & (
            df["taker_buy_quote_volume"] <= df["quote_volume"]
        )

    @pa_schema.dataframe_check(name="one row per (exchange, symbol, open_time)")
    def unique_open_time(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(subset=["exchange", "symbol", "open_time"], keep=False)


class Klines1m(_Ohlcv):
    """`market.klines_1m`: one closed 1-minute kline as the exchange published it."""

    close_time: Series[TIME_MS]  # type: ignore[valid-type]

    @pa_schema.dataframe_check(name="open_time on a minute, close_time = open_time + 59.999 s")
    def minute_aligned(cls, df: pd.DataFrame) -> pd.Series:
        open_time = df["open_time"]
        return (open_time.dt.floor("min") == open_time) & (
            df["close_time"] == open_time + MINUTE - pd.Timedelta(milliseconds=1)
        )


class Ohlcv1h(_Ohlcv):
    """`market.ohlcv_1h`: an hour built from its minutes."""

    minutes: Series[pd.ArrowDtype(pa.uint16())] = pa_schema.Field(ge=1, le=60)  # type: ignore[valid-type]

    @pa_schema.dataframe_check(name="open_time on an hour")
    def hour_aligned(cls, df: pd.DataFrame) -> pd.Series:
        return df["open_time"].dt.floor("h") == df["open_time"]


class Ohlcv1d(_Ohlcv):
    """`market.ohlcv_1d`: a UTC day built from its hours."""

    minutes: Series[pd.ArrowDtype(pa.uint16())] = pa_schema.Field(ge=1, le=1440)  # type: ignore[valid-type]
    hours: Series[pd.ArrowDtype(pa.uint8())] = pa_schema.Field(ge=1, le=24)  # type: ignore[valid-type]

    @pa_schema.dataframe_check(name="open_time on a UTC day")
    def day_aligned(cls, df: pd.DataFrame) -> pd.Series:
        return df["open_time"].dt.floor("D") == df["open_time"]


class Candles1m(_Ohlcv):
    """`market.candles_1m`: a minute built from aggregate trades."""

    agg_trades: Series[pd.ArrowDtype(pa.uint32())] = pa_schema.Field(ge=1)  # type: ignore[valid-type]
    first_trade_id: Series[UINT64]  # type: ignore[valid-type]
    last_trade_id: Series[UINT64]  # type: ignore[valid-type]

    @pa_schema.dataframe_check(name="aggregate ids span exactly agg_trades, trades >= agg_trades")
    def ids_cover(cls, df: pd.DataFrame) -> pd.Series:
        span = df["last_trade_id"] - df["first_trade_id"] + 1
        return (span == df["agg_trades"].astype(UINT64)) & (df["trades"] >= df["agg_trades"].astype(UINT64))


class Trades(pa_schema.DataFrameModel):
    """`market.trades`: one aggregate trade."""

    exchange: Series[STRING] = pa_schema.Field(str_length={"min_value": 1})  # type: ignore[valid-type]
    symbol: Series[STRING] = pa_schema.Field(str_matches=r"^[A-Z0-9_]{2,40}$")  # type: ignore[valid-type]
    trade_id: Series[UINT64]  # type: ignore[valid-type]
    price: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    qty: Series[DECIMAL] = pa_schema.Field(gt=_ZERO)  # type: ignore[valid-type]
    first_trade_id: Series[UINT64]  # type: ignore[valid-type]
    last_trade_id: Series[UINT64]  # type: ignore[valid-type]
    ts: Series[TIME_US]  # type: ignore[valid-type]
    is_buyer_maker: Series[pd.ArrowDtype(pa.bool_())]  # type: ignore[valid-type]

    class Config:
        strict = "filter"
        coerce = False

    @pa_schema.dataframe_check(name="first_trade_id <= last_trade_id")
    def id_range(cls, df: pd.DataFrame) -> pd.Series:
        return df["first_trade_id"] <= df["last_trade_id"]

    @pa_schema.dataframe_check(name="one row per (exchange, symbol, trade_id)")
    def unique_id(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(subset=["exchange", "symbol", "trade_id"], keep=False)


@dataclass(frozen=True)
class SchemaReport:
    """The outcome of validating rows against a model."""

    model: str
    rows: int
    failure_count: int  # failing (check, row) pairs
    failing_rows: int
    failure_cases: pd.DataFrame  # check, column, failing value and the offending row's key columns (capped)
    KEY_COLUMNS: ClassVar[tuple[str, ...]] = ("symbol", "open_time", "trade_id")

    @property
    def passed(self) -> bool:
        return self.failure_count == 0

    def markdown(self, limit: int = 20) -> str:
        if self.passed:
            return f"all {self.rows} rows satisfy {self.model}"
        shown = self.failure_cases.head(limit)
        header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns)
        lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        more = f"\n\n… {self.failure_count - len(shown)} more" if self.failure_count > len(shown) else ""
        return header + "\n" + "\n".join(lines) + more


def frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a pandas frame backed by Arrow (exact decimals, no Python object per value)."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def validate(
    model: type[pa_schema.DataFrameModel], rows: pa.Table | pd.DataFrame, cap: int = 200
) -> SchemaReport:
    """Every failure of `rows` against `model` (lazy: all checks run), with up to `cap` cases kept."""
    data = frame(rows) if isinstance(rows, pa.Table) else rows
    try:
        model.validate(data, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        index = pd.to_numeric(cases["index"], errors="coerce")
        keys = [c for c in SchemaReport.KEY_COLUMNS if c in data.columns]
        # A row-level (dataframe) check reports every column of a failing row: keep one case per row.
        row_level = cases["schema_context"] == "DataFrameSchema"
        cases = cases.assign(
            column=cases["column"].where(~row_level, "(row)"),
            failure_case=cases["failure_case"].where(~row_level, ""),
        ).assign(row=index)
        cases = cases.drop_duplicates(subset=["check", "column", "row"]).reset_index(drop=True)
        index = cases["row"]
        located = cases
        found = located.dropna(subset=["row"])
        if keys and len(found):
            at = data.iloc[found["row"].astype(int).to_numpy()][keys].reset_index(drop=True)
            found = pd.concat([found.reset_index(drop=True), at], axis=1)
        table = pd.concat([found, located[located["row"].isna()]], ignore_index=True)
        columns = ["check", "column", "failure_case", *keys]
        return SchemaReport(
            model=model.__name__,
            rows=len(data),
            failure_count=len(cases),  # failing (check, row) pairs, plus column-level failures
            failing_rows=int(index.dropna().nunique()),
            failure_cases=table.reindex(columns=columns).head(cap).astype(str),
        )
    return SchemaReport(
        model.__name__, len(data), 0, 0, pd.DataFrame(columns=["check", "column", "failure_case"])
    )
