"""Binance WebSocket stream control messages: parsing, validation and the reply texts.

Control messages (web-socket-streams.md): SUBSCRIBE / UNSUBSCRIBE {"method","params":[names],"id"}
answer {"result":null,"id":..}; LIST_SUBSCRIPTIONS answers {"result":[names],"id":..} in
subscription order; SET_PROPERTY ["combined", bool] and GET_PROPERTY ["combined"] switch and read
the combined wrapper. `id` may be a signed 64-bit integer, an alphanumeric string of at most 36
characters, or null. Errors: {"error":{"code":N,"msg":"..."},"id":<id or null>} with Binance's codes
and texts (0 unknown property, 1 "Invalid value type: expected Boolean", 2 "Invalid request: ...",
3 "Invalid JSON: ..."). Simulator choices where Binance documents no text: an invalid stream name
(anywhere in params) refuses the whole request with code 2 "Invalid request: invalid stream" (the
text seen on the wire), params that are not a list of names give code 2 "Invalid request: params
must be a list of stream names", and a SUBSCRIBE that would exceed 1024 streams is refused with code
2 "Invalid request: too many streams ..." (nothing of it subscribed). A well-formed name of an
unknown symbol is accepted and stays silent, as on Binance.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from warehouse_assets.simulator.ws_wire import MAX_STREAMS, valid_stream

ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


class Subscriber(Protocol):
    """The connection a control message acts on."""

    streams: dict[str, None]  # an ordered set
    combined: bool

    def subscribe(self, names: list[str]) -> None: ...

    def unsubscribe(self, names: list[str]) -> None: ...


class ControlError(Exception):
    """A control message Binance would answer with an error object."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _reply(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or (isinstance(value, str) and bool(ID_RE.match(value)))


def _stream_names(params: Any) -> list[str]:
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ControlError(2, "Invalid request: params must be a list of stream names")
    if not all(valid_stream(p) for p in params):
        raise ControlError(2, "Invalid request: invalid stream")
    return list(dict.fromkeys(params))


def answer(text: str, target: Subscriber) -> str:
    """The reply to one control message (see the module docstring)."""
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}"
        return _reply({"error": {"code": 3, "msg": msg}, "id": None})
    request_id = request.get("id") if isinstance(request, dict) else None
    try:
        if not isinstance(request, dict):
            raise ControlError(2, "Invalid request: expected a JSON object with method, params and id")
        if "method" not in request:
            raise ControlError(2, f"Invalid request: missing field `method` at line 1 column {len(text)}")
        if "id" not in request or not _valid_id(request_id):
            request_id = None
            raise ControlError(2, "Invalid request: request ID must be an unsigned integer")
        result = _method(target, request["method"], request.get("params"), text)
    except ControlError as error:
        return _reply({"error": {"code": error.code, "msg": error.msg}, "id": request_id})
    return _reply({"result": result, "id": request_id})


def _method(target: Subscriber, method: Any, params: Any, text: str) -> Any:
    if method == "SUBSCRIBE":
        names = _stream_names(params)
        new = [n for n in names if n not in target.streams]
        if len(target.streams) + len(new) > MAX_STREAMS:
            raise ControlError(
                2,
                f"Invalid request: too many streams; a connection listens to at most {MAX_STREAMS} "
                f"(subscribed {len(target.streams)}, asked for {len(new)} more)",
            )
        target.subscribe(new)
        return None
    if method == "UNSUBSCRIBE":
        target.unsubscribe([n for n in _stream_names(params) if n in target.streams])
        return None
    if method == "LIST_SUBSCRIPTIONS":
        if params:
            raise ControlError(2, "Invalid request: too many parameters")
        return list(target.streams)
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        size = 2 if method == "SET_PROPERTY" else 1
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            raise ControlError(2, "Invalid request: property name must be a string")
        if len(params) > size:
            raise ControlError(2, "Invalid request: too many parameters")
        if params[0] != "combined":
            raise ControlError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return target.combined
        if len(params) < 2 or not isinstance(params[1], bool):
            raise ControlError(1, "Invalid value type: expected Boolean")
        target.combined = params[1]
        return None
    shown = method if isinstance(method, str) else json.dumps(method)
    at = text.find(json.dumps(method))
    column = at + len(json.dumps(method)) if at >= 0 else len(text)
    expected = ", ".join(f"`{m}`" for m in METHODS)
    raise ControlError(
        2,
        f"Invalid request: unknown variant `{shown}`, expected one of {expected} at line 1 column {column}",
    )
