"""Reading what a caller's config and arguments name: threads and ledger filters."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._models import EffectStatus
from langgraph_rollback.core.query import EffectQuery

__all__ = ["checkpoint_config", "effect_query", "thread_id_of"]

StatusFilter = EffectStatus | str | list[EffectStatus | str] | None


def thread_id_of(config: RunnableConfig) -> str:
    """The thread a config names.

    Raises:
        InvalidConfigError: It names none.
    """
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        raise InvalidConfigError(
            "The config names no thread: `configurable.thread_id` is missing. "
            'Fix: pass {"configurable": {"thread_id": "<your thread>"}}.'
        )
    return str(thread_id)


def effect_query(
    config: RunnableConfig,
    *,
    status: StatusFilter,
    tool: str | None,
    before: int | None,
    limit: int | None,
) -> EffectQuery:
    """The query `list_effects(config, ...)` runs.

    Raises:
        InvalidConfigError: A filter is not one `list_effects` takes.
    """
    configurable: dict[str, Any] = dict((config or {}).get("configurable") or {})
    if status is None:
        statuses: tuple[str, ...] = ()
    elif isinstance(status, (str, EffectStatus)):
        statuses = (_status(status),)
    else:
        statuses = tuple(_status(s) for s in status)
    if limit is not None and (not _is_int(limit) or limit < 0):
        raise InvalidConfigError(
            f"limit must be a non-negative int, got {limit!r}. Fix: pass e.g. "
            "limit=50, or leave it out for every effect."
        )
    if limit is not None and limit > INT64_MAX:
        raise InvalidConfigError(
            f"limit must be at most 2**63-1 (a 64-bit integer), got {limit!r}. "
            "Fix: pass e.g. limit=50, or leave it out for every effect."
        )
    if before is not None and not _is_int(before):
        raise InvalidConfigError(
            f"before must be an effect's seq (an int), got {before!r}. Fix: pass "
            "the seq of the oldest effect of the previous page, e.g. "
            "before=page[-1].seq."
        )
    if before is not None and not -INT64_MAX - 1 <= before <= INT64_MAX:
        raise InvalidConfigError(
            f"before must be an effect's seq (a 64-bit integer), got {before!r}. "
            "Fix: pass the seq of the oldest effect of the previous page, e.g. "
            "before=page[-1].seq, or leave it out for the newest effects."
        )
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise InvalidConfigError(
            f"tool must be a tool name (a non-empty str), got {tool!r}. Fix: pass "
            "the name effects are recorded under, e.g. tool='create_ticket'."
        )
    return EffectQuery(
        thread_id=thread_id_of(config),
        checkpoint_ns=configurable.get("checkpoint_ns") or "",
        checkpoint_id=configurable.get("checkpoint_id"),
        statuses=statuses,
        tool=tool,
        before_seq=before,
        limit=limit,
    )


INT64_MAX = 2**63 - 1
"""The largest `limit` or `before` the databases' 64-bit integers hold."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def effect_id_arg(effect_id: Any) -> str:
    """An `effect_id` argument, checked.

    Raises:
        InvalidConfigError: It is not a non-empty string.
    """
    if not isinstance(effect_id, str) or not effect_id:
        raise InvalidConfigError(
            f"effect_id must be an effect's id (a non-empty str), got "
            f"{effect_id!r}. Fix: pass Effect.id, e.g. from "
            "saver.list_effects(config)."
        )
    return effect_id


def _status(value: EffectStatus | str) -> str:
    try:
        return EffectStatus(value).value
    except ValueError:
        allowed = ", ".join(s.value for s in EffectStatus)
        raise InvalidConfigError(
            f"Unknown effect status {value!r}. Fix: use one of {allowed}."
        ) from None


def checkpoint_config(thread_id: str, checkpoint_id: str) -> RunnableConfig:
    """The config of a root checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }
