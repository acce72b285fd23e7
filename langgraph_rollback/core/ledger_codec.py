"""The ledger's own payload codec: msgpack with an allow-list, never pickle.

Every ledger payload (arguments, results, observations, errors, undo
outcomes, reports) is written and read by `LedgerCodec`, whatever serde the
saver's checkpoints use. It writes the msgpack extension format of
LangGraph's `JsonPlusSerializer` (langgraph-checkpoint 4.3,
`serde/jsonplus.py` `_msgpack_default`), so rows written before it still
read, but decodes with an allow-list only: an extension naming a type that
is not on it is refused, never imported or called.

Upstream's decoder (`_create_msgpack_ext_hook`) imports the module and calls
the constructor any extension names when `allowed_msgpack_modules` is True,
which is the default unless `LANGGRAPH_STRICT_MSGPACK` is set
(`serde/_msgpack.py` `STRICT_MSGPACK_ENABLED`); then it allows only
`SAFE_MSGPACK_TYPES` plus the serializer's own `allowed_msgpack_modules`.
The ledger is always strict, and refuses rather than returning the raw
fields in place of a blocked type (as upstream does), so a replay never
returns a different value than the call did.

On the list (`allowed`): plain msgpack data; tuples, sets, frozensets and
deques; upstream's `SAFE_MSGPACK_TYPES` (datetimes, UUID, Decimal, ip
addresses, paths, ZoneInfo, compiled patterns, LangChain messages and
Documents, LangGraph's `Send`, `Command`, `Interrupt`, ...); pydantic models
of `langchain_core` that are not runnables; enums, pydantic models and
dataclasses of this library; and the exact `(module, name)` pairs of the
serde's `allowed_msgpack_modules` (a type, or an enum, dataclass, named
tuple or pydantic model the user listed). Anything else is refused when it
is written, so a tool's arguments fail before the call.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import importlib
import ipaddress
import pathlib
import re
import sys
import typing
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import ormsgpack
from langchain_core.runnables import Runnable
from langgraph.checkpoint.serde import _msgpack as upstream
from langgraph.checkpoint.serde.base import CipherProtocol, SerializerProtocol
from langgraph.types import Send
from pydantic import BaseModel

__all__ = ["MAX_PAYLOAD_BYTES", "LedgerCodec", "RefusedPayloadError"]

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""The largest payload written or read: 16 MiB, far above any tool's
arguments, so an oversized row is refused before it is unpacked."""
MAX_DEPTH = 64
"""How deeply values (and extensions) may nest."""
FORMAT = "msgpack"

# The extension codes of `serde/jsonplus.py`; 6 (numpy) and 7 (a delta
# snapshot) are never written to the ledger and never read from it.
SINGLE, POSITIONAL, KEYWORDS, METHOD, PYDANTIC_V1, PYDANTIC_V2 = range(6)

TypeKey = tuple[str, str]
_WRITE = ormsgpack.OPT_NON_STR_KEYS | ormsgpack.OPT_REPLACE_SURROGATES
"""As upstream writes (`serde/jsonplus.py` `_option`): a lone surrogate in a
string is stored as U+FFFD, not refused."""
_RECORD = (
    ormsgpack.OPT_REPLACE_SURROGATES
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_UUID
)
"""`dumps_record`: ormsgpack writes exact dicts with str keys, lists and
scalars itself and hands every other value (subclasses, tuples, datetimes,
enums, ...) to the codec; a dict with other keys sends the record down
`dumps_typed`'s path."""
_SCALARS = (str, int, float, bool, bytes, type(None))
_SCALAR_SET = frozenset(_SCALARS)
_OWN_MODULES = ("langgraph_rollback.",)
_LANGCHAIN_MODULES = ("langchain_core.",)


class RefusedPayloadError(ValueError):
    """A value the ledger codec will not write, or a payload it will not read."""


def _key(cls: type) -> TypeKey:
    return cls.__module__, cls.__name__


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def _by_rule(cls: Any) -> bool:
    """Types allowed by where they are defined, not by name."""
    if not isinstance(cls, type):
        return False
    module = cls.__module__ + "."
    if module.startswith(_LANGCHAIN_MODULES):
        return _is_model(cls) and _plain_model(cls)
    if module.startswith(_OWN_MODULES):
        is_data = dataclasses.is_dataclass(cls) or issubclass(cls, Enum)
        return is_data or _is_model(cls)
    return False


@functools.cache
def _plain_model(cls: type) -> bool:
    """A LangChain model that is not a runnable and whose fields, as declared,
    can hold none either: validating a payload builds what the fields
    declare, so a field typed as a prompt would build one on read."""
    if issubclass(cls, Runnable):
        return False
    fields = getattr(cls, "model_fields", {})
    return not any(_may_hold_runnable(f.annotation) for f in fields.values())


def _may_hold_runnable(annotation: Any, depth: int = 0) -> bool:
    if depth > 8:
        return True  # too deep to tell: refuse
    if isinstance(annotation, type):
        if issubclass(annotation, Runnable):
            return True
        if issubclass(annotation, BaseModel) and annotation.__module__.startswith(
            _LANGCHAIN_MODULES
        ):
            return not _plain_model(annotation)
    return any(_may_hold_runnable(a, depth + 1) for a in typing.get_args(annotation))


def _datetime(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _send(node: str, arg: Any, timeout: Any = None) -> Send:
    # `Send` takes its timeout by keyword (upstream's `_send_from_args`).
    return Send(node, arg, timeout=timeout)


_IP_TYPES: tuple[type, ...] = (
    ipaddress.IPv4Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Address,
    ipaddress.IPv6Interface,
    ipaddress.IPv6Network,
)

_BUILT_IN: dict[TypeKey, Callable[..., Any]] = {
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("collections", "deque"): deque,
    ("datetime", "date"): date,
    ("datetime", "time"): time,
    ("datetime", "timedelta"): timedelta,
    ("datetime", "timezone"): timezone,
    ("uuid", "UUID"): uuid.UUID,
    ("decimal", "Decimal"): decimal.Decimal,
    ("zoneinfo", "ZoneInfo"): ZoneInfo,
    ("re", "compile"): re.compile,
    ("langgraph.types", "Send"): _send,
    **{("ipaddress", c.__name__): c for c in _IP_TYPES},
}
"""Constructors called without importing anything."""
_METHODS: dict[tuple[str, str, str], Callable[[Any], Any]] = {
    ("datetime", "datetime", "fromisoformat"): _datetime,
}
"""`EXT_METHOD_SINGLE_ARG`: upstream's `SAFE_MSGPACK_METHODS`, and no other."""


_KNOWN_TYPES = 1024
"""How many types' `allows` answers a codec keeps."""


class LedgerCodec:
    """Writes and reads ledger payloads (a `SerializerProtocol`).

    Args:
        allowed: `(module, name)` pairs (or types) allowed beyond the
            built-in list, as in `JsonPlusSerializer(allowed_msgpack_modules=)`.
        cipher: Encrypts every payload (an `EncryptedSerializer`'s cipher);
            a payload without it is then refused.
    """

    def __init__(
        self,
        allowed: Iterable[tuple[str, ...] | type] = (),
        *,
        cipher: CipherProtocol | None = None,
        max_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        pairs = {_key(a) if isinstance(a, type) else tuple(a) for a in allowed}
        self._known: dict[type, bool] = {}
        self.allowed = frozenset((p[0], p[1]) for p in pairs if len(p) == 2)
        self.cipher = cipher
        self.max_bytes = max_bytes

    @property
    def allowed(self) -> frozenset[TypeKey]:
        """The `(module, name)` pairs allowed beyond the built-in list."""
        return self._allowed

    @allowed.setter
    def allowed(self, pairs: frozenset[TypeKey]) -> None:
        # The kept `allows` answers were given by the list replaced.
        self._allowed = pairs
        self._known = {}

    @classmethod
    def for_serde(cls, serde: SerializerProtocol | None) -> LedgerCodec:
        """The codec of a saver whose checkpoints use `serde`: its cipher
        (an `EncryptedSerializer`'s) and its explicit `allowed_msgpack_modules`.

        Upstream's permissive default (`allowed_msgpack_modules=True`, which
        `JsonPlusSerializer` keeps in `_allowed_msgpack_modules`) adds
        nothing: only pairs the user listed do.
        """
        cipher = getattr(serde, "cipher", None)
        inner = getattr(serde, "serde", serde) if cipher is not None else serde
        listed = getattr(inner, "_allowed_msgpack_modules", None)
        allowed = listed if isinstance(listed, (set, frozenset)) else ()
        return cls(allowed, cipher=cipher)

    def allows(self, cls: Any) -> bool:
        """Whether values of type `cls` may be written."""
        if not isinstance(cls, type):
            return False
        known = self._known.get(cls)
        if known is None:
            known = self._allows(cls)
            if len(self._known) < _KNOWN_TYPES:
                self._known[cls] = known
        return known

    def _allows(self, cls: type) -> bool:
        key = _key(cls)
        if key in self.allowed or key in upstream.SAFE_MSGPACK_TYPES:
            return True
        if cls is re.Pattern:  # written as upstream writes it, `re.compile`
            return True
        return _by_rule(cls)

    # --- writing ---------------------------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Encode `obj`; `RefusedPayloadError` for a type not on the list."""
        return self._sealed(ormsgpack.packb(self._prepare(obj, 0), option=_WRITE))

    def dumps_record(self, obj: Any) -> tuple[str, bytes]:
        """`dumps_typed` of a record this library builds (a rollback's
        report): the same bytes, its plain data walked by ormsgpack rather
        than in Python. Every value that is not plain data passes the
        allow-list as in `dumps_typed`; two things differ: the nesting of
        plain data is not counted (`MAX_DEPTH` bounds what one call writes,
        not a record that quotes many), and a `bytearray`, `memoryview` or
        `ormsgpack.Ext` is written as it is instead of refused (an extension
        is read back through the allow-list like any other)."""
        stopped: list[BaseException] = []

        def value(item: Any) -> Any:
            try:
                return self._prepare(item, 0)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    stopped.append(exc)  # ormsgpack turns it into a TypeError
                raise

        try:
            data = ormsgpack.packb(obj, default=value, option=_RECORD)
        except TypeError:  # ormsgpack's MsgpackEncodeError, or a refusal
            if stopped:
                raise stopped[0] from None
            return self.dumps_typed(obj)  # the same refusal, with its reason
        return self._sealed(data)

    def _sealed(self, data: bytes) -> tuple[str, bytes]:
        if len(data) > self.max_bytes:
            raise RefusedPayloadError(
                f"the payload is {len(data)} bytes, more than the ledger's limit "
                f"of {self.max_bytes}"
            )
        if self.cipher is None:
            return FORMAT, data
        name, encrypted = self.cipher.encrypt(data)
        return f"{FORMAT}+{name}", encrypted

    def _prepare(self, value: Any, depth: int) -> Any:
        """`value` as msgpack data and extensions; refuses what is not listed."""
        if depth > MAX_DEPTH:
            raise RefusedPayloadError(f"the value nests deeper than {MAX_DEPTH}")
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is list:
            return [self._prepare(v, depth + 1) for v in value]
        if kind is dict:
            out: dict[Any, Any] = {}
            prepare, scalars = self._prepare, _SCALAR_SET
            if depth >= MAX_DEPTH:
                scalars = frozenset()  # the depth rule applies to scalars too
            for k, v in value.items():
                if type(k) not in _SCALAR_SET:
                    self._refuse_key(k)
                # Scalars inline.
                out[k] = v if type(v) in scalars else prepare(v, depth + 1)
            return out
        if kind in (tuple, set, frozenset, deque):
            return self._ext(depth, SINGLE, kind, list(value))
        if not self.allows(kind):
            raise RefusedPayloadError(_not_listed(kind))
        if kind is datetime:  # the commonest (every effect's times): as `_fields`
            return self._ext(depth, METHOD, kind, value.isoformat(), "fromisoformat")
        return self._ext(depth, *_fields(value))

    def _refuse_key(self, key: Any) -> NoReturn:
        raise RefusedPayloadError(
            f"a dict key is a {type(key).__name__}: ledger keys are str, int, "
            "float, bool, bytes or None"
        )

    def _ext(self, depth: int, code: int, cls: type, fields: Any, *more: Any) -> Any:
        name = "compile" if cls is re.Pattern else cls.__name__
        packed = (cls.__module__, name, self._prepare(fields, depth + 1), *more)
        return ormsgpack.Ext(code, ormsgpack.packb(packed, option=_WRITE))

    # --- reading ---------------------------------------------------------------

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decode a stored payload; `RefusedPayloadError` for anything else
        than this codec writes (pickle, JSON, a type not on the list, a
        payload too large, truncated or without the cipher)."""
        type_, blob = data
        if len(blob) > self.max_bytes + 4096:
            raise RefusedPayloadError(
                f"the payload is {len(blob)} bytes, more than the ledger's limit "
                f"of {self.max_bytes}"
            )
        format_, _, cipher_name = type_.partition("+")
        if format_ != FORMAT:
            raise RefusedPayloadError(
                f"it is stored as {type_!r}; the ledger writes only {FORMAT!r}"
            )
        if self.cipher is not None:
            if not cipher_name:
                raise RefusedPayloadError(
                    "it is not encrypted, but this saver's payloads are: the row "
                    "was not written through this saver"
                )
            blob = self.cipher.decrypt(cipher_name, blob)
        elif cipher_name:
            raise RefusedPayloadError(
                f"it is encrypted ({cipher_name!r}) and this saver has no cipher"
            )
        errors: list[Exception] = []
        try:
            return _unpack(blob, self._hook(0, errors))
        except Exception as exc:
            # ormsgpack replaces what the hook raised by "ext_hook failed".
            if errors:
                raise errors[0] from None
            raise RefusedPayloadError(f"it is not a msgpack payload ({exc})") from None

    def _hook(self, depth: int, errors: list[Exception]) -> Callable[[int, bytes], Any]:
        def hook(code: int, data: bytes) -> Any:
            try:
                if depth >= MAX_DEPTH:
                    raise RefusedPayloadError(
                        f"extensions nest deeper than {MAX_DEPTH}"
                    )
                return self._build(code, _unpack(data, self._hook(depth + 1, errors)))
            except Exception as exc:
                errors.append(exc)
                raise

        return hook

    def _build(self, code: int, fields: Any) -> Any:
        if type(fields) is not list or len(fields) < 3 or code > PYDANTIC_V2:
            raise RefusedPayloadError(f"a malformed msgpack extension (code {code})")
        module, name, arg = fields[0], fields[1], fields[2]
        if code == METHOD:
            method = _METHODS.get((module, name, fields[3] if len(fields) > 3 else ""))
            if method is None:
                raise RefusedPayloadError(_refused(module, name))
            return method(arg)
        make = self._constructor(module, name)
        if code == SINGLE:
            return make(arg)
        if code == POSITIONAL:
            return make(*arg)
        if code == KEYWORDS:
            return make(**arg)
        try:  # pydantic, as upstream: validated, else constructed as stored
            return make(**arg)
        except Exception:
            return make.model_construct(**arg)

    def _constructor(self, module: Any, name: Any) -> Any:
        """What an extension names, if it is on the list: looked up in a
        table, or imported only when listed by name or by rule."""
        key = (module, name)
        if key in _BUILT_IN:
            return _BUILT_IN[key]
        listed = key in self.allowed or key in upstream.SAFE_MSGPACK_TYPES
        prefix = f"{module}." if isinstance(module, str) else ""
        by_rule = prefix.startswith(_LANGCHAIN_MODULES + _OWN_MODULES)
        if not (listed or by_rule) or not isinstance(name, str):
            raise RefusedPayloadError(_refused(module, name))
        found = getattr(_module(module, listed), name, None)
        if found is None or not (listed or _by_rule(found)):
            raise RefusedPayloadError(_refused(module, name))
        return found


_IMPORTABLE = (
    "langchain_core.",
    "langgraph_rollback.core.",
    "langgraph_rollback.batteries.",
)
"""Packages a payload allowed by rule may import on read: library code with
no side effects at import. Anything else allowed by rule (`langgraph_rollback`'s
command line, its server) must already be imported; reading a row never runs
a module."""


def _module(module: str, listed: bool) -> Any:
    """The module an extension names: imported when it is listed by name, or
    in one of the `_IMPORTABLE` packages; otherwise only if already imported."""
    if "__main__" in module.split("."):
        raise RefusedPayloadError(_refused(module, "(a __main__ module)"))
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    if (
        listed
        or f"{module}.".startswith(_IMPORTABLE)
        or module == "langgraph_rollback._models"
    ):
        return importlib.import_module(module)
    raise RefusedPayloadError(_refused(module, "(a module not imported here)"))


def _fields(value: Any) -> tuple[int, type, Any, *tuple[Any, ...]]:
    """(extension code, type, fields[, method]) of a listed value, in
    upstream's layout (`serde/jsonplus.py` `_msgpack_default`)."""
    cls = type(value)
    if isinstance(value, Enum):
        return SINGLE, cls, value.value
    if isinstance(value, BaseModel):
        fields = {k: getattr(value, k) for k in type(value).model_fields}
        fields.update(value.__pydantic_extra__ or {})
        return PYDANTIC_V2, cls, fields, "model_validate_json"
    if dataclasses.is_dataclass(value):
        own = dataclasses.fields(value)
        return KEYWORDS, cls, {f.name: getattr(value, f.name) for f in own if f.init}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return KEYWORDS, cls, dict(value._asdict())
    if isinstance(value, datetime):
        return METHOD, cls, value.isoformat(), "fromisoformat"
    return _plain_fields(value)


def _plain_fields(value: Any) -> tuple[int, type, Any]:
    cls = type(value)
    if isinstance(value, (uuid.UUID,)):
        return SINGLE, cls, value.hex
    if isinstance(value, ZoneInfo):
        return SINGLE, cls, value.key
    if isinstance(value, (decimal.Decimal, *_IP_TYPES)):
        return SINGLE, cls, str(value)
    if isinstance(value, pathlib.PurePath):
        return POSITIONAL, cls, list(value.parts)
    if isinstance(value, re.Pattern):
        return POSITIONAL, cls, [value.pattern, value.flags]
    if isinstance(value, timedelta):
        return POSITIONAL, cls, [value.days, value.seconds, value.microseconds]
    if isinstance(value, date):
        return POSITIONAL, cls, [value.year, value.month, value.day]
    if isinstance(value, timezone):
        return POSITIONAL, cls, list(value.__getinitargs__())  # type: ignore[attr-defined]
    if isinstance(value, time):
        names = ("hour", "minute", "second", "microsecond", "tzinfo", "fold")
        return KEYWORDS, cls, {n: getattr(value, n) for n in names}
    if isinstance(value, Send):
        timeout = [value.timeout] if value.timeout is not None else []
        return POSITIONAL, cls, [value.node, value.arg, *timeout]
    raise RefusedPayloadError(_not_listed(cls))


def _unpack(data: bytes, hook: Callable[[int, bytes], Any]) -> Any:
    return ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)


def _not_listed(cls: type) -> str:
    module, name = _key(cls)
    return (
        f"a {name} ({module}.{name}) is not on the ledger's allow-list. Fix: pass "
        "plain data (str, int, float, bool, None, bytes, lists, tuples, dicts, "
        "sets, datetimes, UUIDs, Decimals, LangChain messages), or allow the type "
        "through the saver's serializer: "
        f"JsonPlusSerializer(allowed_msgpack_modules=[({module!r}, {name!r})])"
    )


def _refused(module: Any, name: Any) -> str:
    return (
        f"it names {module!r}.{name!r}, which is not on the ledger's allow-list "
        "(nothing was imported or called)"
    )
