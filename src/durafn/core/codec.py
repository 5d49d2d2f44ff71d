"""The codec: how values cross the durable boundary.

Everything stored (inputs, outputs, event data, custom status) is JSON text. Plain JSON values
(``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict`` with ``str`` keys) are
written as they are. A few more types are written as tagged objects and read back as themselves:

=====================  =============================================================
type                   stored as
=====================  =============================================================
``datetime``           ``{"$type": "datetime", "value": "2026-01-02T03:04:05+00:00"}``
``date``               ``{"$type": "date", "value": "2026-01-02"}``
``timedelta``          ``{"$type": "timedelta", "value": [0, 3600, 0]}`` (days, s, µs)
``UUID``               ``{"$type": "uuid", "value": "..."}``
``Decimal``            ``{"$type": "decimal", "value": "12.50"}``
``tuple``              ``{"$type": "tuple", "value": [...]}``
dataclass instance     ``{"$type": "dataclass", "class": "module:Qualname", "value": {...}}``
pydantic model         ``{"$type": "pydantic", "class": "module:Qualname", "value": {...}}``
=====================  =============================================================

Reading a dataclass or pydantic model never imports anything: the class is looked up among the
modules already loaded (the worker has imported the app that defines it). When it is not loaded,
the value is read back as a plain ``dict``. Nothing is ever unpickled or evaluated.

Anything else (sets, bytes, arbitrary objects, non-string dict keys, NaN) is refused with a
``TypeError`` that names the offending value's path, before anything is stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from durafn.core.errors import PayloadTooLarge

TYPE_KEY = "$type"
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

JsonValue = Any


def encode(value: Any, *, what: str = "value") -> str:
    """Encode ``value`` as JSON text; ``TypeError`` names what cannot be encoded and where."""
    text = dumps(_to_json(value, what))
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"{what} encodes to {size} bytes, over the limit of {MAX_PAYLOAD_BYTES}; "
            "store large data elsewhere and pass a reference"
        )
    return text


def encode_optional(value: Any, *, what: str = "value") -> str | None:
    """Like :func:`encode`, but ``None`` stays ``None`` (no payload stored)."""
    return None if value is None else encode(value, what=what)


def decode(text: str | None) -> Any:
    """Decode JSON text written by :func:`encode`; ``None`` reads as ``None``."""
    if text is None:
        return None
    if _TAG not in text and _LONG_NUMBER.search(text) is None:
        return orjson.loads(text)  # plain JSON (orjson would read a huge int as a float)
    return _TAGGED_DECODER.decode(text)


def dumps(plain: JsonValue) -> str:
    """Compact JSON text of plain JSON values, as ``json.dumps`` writes it (non-ASCII kept)."""
    try:
        return orjson.dumps(plain).decode()
    except TypeError:  # an int beyond 64 bits: the standard library writes any int
        return json.dumps(plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str) -> JsonValue:
    """Parse JSON text into plain values (no tagged types), exact for any int."""
    if _LONG_NUMBER.search(text) is None:
        return orjson.loads(text)
    return json.loads(text)


def _to_json(value: Any, path: str) -> JsonValue:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path} is {value!r}: JSON has no NaN or infinity")
        return value
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{path} has a dict key {key!r} of type {type(key).__name__}: "
                    "JSON object keys must be str"
                )
            if key == TYPE_KEY:
                raise TypeError(f"{path} uses the reserved key {TYPE_KEY!r}")
            out[key] = _to_json(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, list):
        return [_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        items = [_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return {TYPE_KEY: "tuple", "value": items}
    if isinstance(value, datetime):
        return {TYPE_KEY: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TYPE_KEY: "date", "value": value.isoformat()}
    if isinstance(value, timedelta):
        return {TYPE_KEY: "timedelta", "value": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {TYPE_KEY: "uuid", "value": str(value)}
    if isinstance(value, Decimal):
        return {TYPE_KEY: "decimal", "value": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {
            TYPE_KEY: "dataclass",
            "class": _class_path(type(value)),
            "value": _to_json(fields, f"{path}.<{type(value).__name__}>"),
        }
    if _is_pydantic_model(value):
        dumped = value.model_dump(mode="json")
        return {TYPE_KEY: "pydantic", "class": _class_path(type(value)), "value": dumped}
    raise TypeError(
        f"{path} of type {type(value).__name__} cannot cross the durable boundary: "
        "use JSON values (dict, list, str, int, float, bool, None), dataclasses, pydantic "
        "models, datetime, date, timedelta, UUID, Decimal or tuple"
    )


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_pydantic_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def _loaded_class(path: str) -> type | None:
    """Find an already-imported class by ``module:Qualname``; never import anything."""
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part.startswith("<"):
            return None
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def _from_tagged(obj: dict[str, Any]) -> Any:
    tag = obj.get(TYPE_KEY)
    if tag is None:
        return obj
    decoder = _DECODERS.get(tag)
    if decoder is None:
        return obj
    return decoder(obj)


def _decode_timedelta(value: Any) -> timedelta:
    if isinstance(value, list):
        days, seconds, microseconds = value
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    return timedelta(seconds=value)


def _decode_dataclass(obj: dict[str, Any]) -> Any:
    cls = _loaded_class(obj.get("class", ""))
    fields = obj["value"]
    if cls is None or not dataclasses.is_dataclass(cls):
        return fields
    init_names = {f.name for f in dataclasses.fields(cls) if f.init}
    instance = cls(**{k: v for k, v in fields.items() if k in init_names})
    for key, item in fields.items():
        if key not in init_names:
            object.__setattr__(instance, key, item)
    return instance


def _decode_pydantic(obj: dict[str, Any]) -> Any:
    cls = _loaded_class(obj.get("class", ""))
    if cls is None or not hasattr(cls, "model_validate"):
        return obj["value"]
    return cls.model_validate(obj["value"])


_DECODERS: dict[str, Any] = {
    "tuple": lambda o: tuple(o["value"]),
    "datetime": lambda o: datetime.fromisoformat(o["value"]),
    "date": lambda o: date.fromisoformat(o["value"]),
    "timedelta": lambda o: _decode_timedelta(o["value"]),
    "uuid": lambda o: uuid.UUID(o["value"]),
    "decimal": lambda o: Decimal(o["value"]),
    "dataclass": _decode_dataclass,
    "pydantic": _decode_pydantic,
}


_TAG = f'"{TYPE_KEY}"'
# 19 digits in a row: possibly an int beyond 64 bits, which only the standard library reads
# exactly. Plain JSON without one (nearly every payload) takes orjson's faster path.
_LONG_NUMBER = re.compile(r"\d{19}")
_TAGGED_DECODER = json.JSONDecoder(object_hook=_from_tagged)
