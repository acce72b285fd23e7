"""Ledger payloads: what goes into the `intent`, `outcome` and `undo` columns.

Each payload is a dict (`{"args": ..., "before": ...}`, `{"result": ...,
"after": ...}`, ...) encoded with the saver's serde. Nothing here touches a
database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import SerializationError

__all__ = ["decode_payload", "encode_payload", "normalize", "storable_or"]


def encode_payload(
    serde: SerializerProtocol, value: Mapping[str, Any], *, tool: str
) -> tuple[str, bytes]:
    """Serialise a payload with the saver's serde.

    Raises:
        SerializationError: Naming the first field (`argument 'name'`,
            `result`, `before`, `after`) the serde cannot encode.
    """
    try:
        return serde.dumps_typed(dict(value))
    except Exception as exc:
        field_name, bad = _find_unserializable(serde, value)
        raise SerializationError(
            f"Tool {tool!r}: {field_name} is a {type(bad).__name__}, which the "
            f"saver's serializer cannot store ({exc}). The ledger must record it "
            "so the effect can be replayed and undone. Fix: pass plain data "
            "(str, int, float, bool, None, lists, dicts, datetimes, pydantic "
            "models or dataclasses) instead.",
            tool=tool,
            field=field_name,
        ) from exc


def _find_unserializable(
    serde: SerializerProtocol, value: Mapping[str, Any]
) -> tuple[str, Any]:
    for key, item in value.items():
        if key == "args" and isinstance(item, Mapping):
            for arg, arg_value in item.items():
                try:
                    serde.dumps_typed(arg_value)
                except Exception:
                    return f"argument {arg!r}", arg_value
            continue
        try:
            serde.dumps_typed(item)
        except Exception:
            return str(key), item
    return "payload", value


def decode_payload(
    serde: SerializerProtocol,
    type_: str | None,
    data: bytes | None,
    *,
    tool: str,
    field: str,
) -> dict[str, Any]:
    """Load a stored payload, refusing anything pickled.

    Pickle runs arbitrary code on load; a ledger row carrying one was not
    written by this library (which never enables pickle), so it is refused
    whatever the saver's serde would allow.

    Raises:
        SerializationError: The payload is pickled, or cannot be decoded.
    """
    if type_ is None or data is None:
        return {}
    if "pickle" in type_.lower():
        raise SerializationError(
            f"Refusing to load the {field} of a {tool!r} effect: it is stored as "
            f"{type_!r}, and unpickling runs arbitrary code. This library never "
            "writes pickle, so the row was written by something else. Fix: "
            "inspect and delete the row; never enable pickle for the ledger.",
            tool=tool,
            field=field,
        )
    try:
        value = serde.loads_typed((type_, data))
    except Exception as exc:
        raise SerializationError(
            f"Cannot decode the {field} of a {tool!r} effect ({type_!r}): {exc}. "
            "Fix: open the database with the serde (and encryption key) it was "
            "written with.",
            tool=tool,
            field=field,
        ) from exc
    if not isinstance(value, dict):
        raise SerializationError(
            f"The {field} of a {tool!r} effect is a {type(value).__name__}, not "
            "a ledger payload. Fix: inspect and delete the row.",
            tool=tool,
            field=field,
        )
    return value


def normalize(serde: SerializerProtocol, value: Any) -> Any:
    """`value` as it reads back from the ledger (tuples become lists, ...)."""
    try:
        return serde.loads_typed(serde.dumps_typed(value))
    except Exception:
        return value


def storable_or(serde: SerializerProtocol, value: Any, default: Any) -> Any:
    """`value` if the serde can store it, else `default`."""
    try:
        serde.dumps_typed(value)
    except Exception:
        return default
    return value
