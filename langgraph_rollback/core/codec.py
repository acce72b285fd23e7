"""Ledger payloads: what goes into the `intent`, `outcome` and `undo` columns.

Each payload is a dict (`{"args": ..., "before": ...}`, `{"result": ...,
"after": ...}`, ...) encoded with the saver's ledger codec
(`core.ledger_codec.LedgerCodec`), never with a checkpoint serde: a serde
passed here is turned into the codec it implies (its cipher and its
`allowed_msgpack_modules`). Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import SerializationError
from langgraph_rollback.core.ledger_codec import LedgerCodec

__all__ = [
    "decode_payload",
    "encode_payload",
    "encode_with",
    "ledger_codec_of",
    "normalize",
    "same",
    "storable_or",
]


def ledger_codec_of(serde: SerializerProtocol) -> LedgerCodec:
    """`serde` if it is a ledger codec, else the codec it implies."""
    if isinstance(serde, LedgerCodec):
        return serde
    return LedgerCodec.for_serde(serde)


def encode_payload(
    serde: SerializerProtocol, value: Mapping[str, Any], *, tool: str
) -> tuple[str, bytes]:
    """Serialise a payload with the ledger codec.

    Raises:
        SerializationError: Naming the first field (`argument 'name'`,
            `result`, `before`, `after`) the codec refuses, and the fix.
    """
    return encode_with(ledger_codec_of(serde), value, tool=tool)


def encode_with(
    codec: SerializerProtocol, value: Mapping[str, Any], *, tool: str
) -> tuple[str, bytes]:
    """`encode_payload` with exactly this serializer (argument digests use
    one of their own, so call keys stay what they were)."""
    try:
        return codec.dumps_typed(dict(value))
    except Exception as exc:
        field_name, bad = _find_unserializable(codec, value)
        raise SerializationError(
            f"Tool {tool!r}: {field_name} is a {type(bad).__name__}, which the "
            f"ledger cannot store: {exc}. The ledger must record it exactly "
            "so the effect can be replayed and undone.",
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
    effect_id: str | None = None,
) -> dict[str, Any]:
    """Load a stored payload with the ledger codec's allow-list.

    Nothing a row names is imported or called unless it is on the list;
    pickle (which runs arbitrary code on load) is refused whatever the
    saver's serde would allow, since this library never writes it.

    Raises:
        SerializationError: The payload is not one the codec writes (pickle,
            JSON, a type not on the list, too large, truncated, unencrypted
            under a cipher), naming the row.
    """
    if type_ is None or data is None:
        return {}
    if "pickle" in type_.lower():
        which = _which(tool, effect_id)
        raise SerializationError(
            f"Refusing to load the {field} of {which}: it is stored as "
            f"{type_!r}, and unpickling runs arbitrary code. This library never "
            "writes pickle, so the row was written by something else. Fix: "
            "inspect and delete the row; never enable pickle for the ledger.",
            tool=tool,
            field=field,
            effect_id=effect_id,
        )
    try:
        value = ledger_codec_of(serde).loads_typed((type_, data))
    except Exception as exc:
        which = _which(tool, effect_id)
        raise SerializationError(
            f"Cannot decode the {field} of {which} ({type_!r}): {exc}. Nothing "
            "it names was imported or run. Fix: open the database with the serde "
            "(and encryption key) it was written with; if it was, the row was "
            "not written by this library: inspect and delete it.",
            tool=tool,
            field=field,
            effect_id=effect_id,
        ) from None
    if not isinstance(value, dict):
        which = _which(tool, effect_id)
        raise SerializationError(
            f"The {field} of {which} is a {type(value).__name__}, not "
            "a ledger payload. Fix: inspect and delete the row.",
            tool=tool,
            field=field,
            effect_id=effect_id,
        )
    return value


def _which(tool: str, effect_id: str | None) -> str:
    """The row an error names (made only for an error: rows decode by the
    thousand while planning)."""
    return f"effect {effect_id} ({tool!r})" if effect_id else f"a {tool!r} effect"


def normalize(serde: SerializerProtocol, value: Any) -> Any:
    """`value` as it reads back from the ledger (a copy of it)."""
    codec = ledger_codec_of(serde)
    try:
        return codec.loads_typed(codec.dumps_typed(value))
    except Exception:
        return value


def storable_or(serde: SerializerProtocol, value: Any, default: Any) -> Any:
    """`value` if the ledger can store it, else `default`."""
    if value is None:
        return value  # what most inverses return: nothing to try
    try:
        ledger_codec_of(serde).dumps_typed(value)
    except Exception:
        return default
    return value


def same(a: Any, b: Any) -> bool:
    """Whether two observations of a target are the same state.

    Plain equality, except that NaN equals NaN (an observation holding one
    would otherwise never match itself), and a tuple equals the list with
    its items: rows written before the ledger codec kept tuples hold lists.
    """
    return bool(a == b) or _loose(a) == _loose(b)


_NAN = ("__nan__",)


def _loose(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return _NAN
    if isinstance(value, (list, tuple)):
        return [_loose(v) for v in value]
    if isinstance(value, dict):
        return {k: _loose(v) for k, v in value.items()}
    return value
