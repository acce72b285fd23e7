"""What every rollback saver adds to a LangGraph checkpointer.

`BaseRollbackSaver` is mixed into a subclass of one of LangGraph's own savers
(`InMemorySaver`, `SqliteSaver`, ...). Checkpoint storage stays upstream's;
the mixin adds the side-effect ledger's public API (`list_effects`,
`resolve_effect` and their async twins) on top of a handful of storage
primitives that each backend implements with its own I/O:

- `_ledger_begin(row)`: insert an intent unless its effect id exists, commit,
  return `(stored_row, inserted)`;
- `_ledger_update(update)`: compare-and-set one row's status and payloads,
  commit, return whether it changed;
- `_ledger_select(query)`: rows matching an `EffectQuery`, newest first;

each with an `_a`-prefixed async twin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import (
    EffectNotFoundError,
    EffectStateError,
    InvalidConfigError,
)
from langgraph_rollback._ledger import (
    EffectQuery,
    LedgerRow,
    Update,
    effect_from_row,
    encode_payload,
    utcnow,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback._registry import ToolRegistry, default_registry

__all__ = ["BaseRollbackSaver"]


class BaseRollbackSaver(ABC):
    """The ledger half of a rollback saver; see the module docstring."""

    serde: SerializerProtocol
    registry: ToolRegistry = default_registry
    """Where rollbacks through this saver find inverses by tool name."""

    # --- storage primitives, one set per backend ------------------------------

    @abstractmethod
    def _ledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]: ...

    @abstractmethod
    def _ledger_update(self, update: Update) -> bool: ...

    @abstractmethod
    def _ledger_select(self, query: EffectQuery) -> list[LedgerRow]: ...

    @abstractmethod
    async def _aledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]: ...

    @abstractmethod
    async def _aledger_update(self, update: Update) -> bool: ...

    @abstractmethod
    async def _aledger_select(self, query: EffectQuery) -> list[LedgerRow]: ...

    # --- public API -----------------------------------------------------------

    def list_effects(
        self,
        config: RunnableConfig,
        *,
        status: EffectStatus | str | list[EffectStatus | str] | None = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """The effects recorded on a thread, newest first (by `seq`).

        Args:
            config: Names the thread (`configurable.thread_id`). With a
                `checkpoint_id`, only effects of tasks that started from that
                checkpoint (for the root namespace: every task whose root
                checkpoint it is, subgraph tasks included).
            status: Only effects in this status (or these statuses).
            tool: Only effects of this tool.
            before: Only effects with `seq` lower than this (for paging).
            limit: At most this many effects.

        Example:
            ```python
            for effect in saver.list_effects({"configurable": {"thread_id": "1"}}):
                print(effect.seq, effect.tool, effect.status.value, effect.args)
            ```
        """
        query = _query(config, status=status, tool=tool, before=before, limit=limit)
        return [effect_from_row(row, self.serde) for row in self._ledger_select(query)]

    async def alist_effects(
        self,
        config: RunnableConfig,
        *,
        status: EffectStatus | str | list[EffectStatus | str] | None = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """Async `list_effects`."""
        query = _query(config, status=status, tool=tool, before=before, limit=limit)
        rows = await self._aledger_select(query)
        return [effect_from_row(row, self.serde) for row in rows]

    def get_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """One effect of the thread `config` names.

        Raises:
            EffectNotFoundError: No such effect on that thread.
        """
        query = EffectQuery(thread_id=_thread_id(config), effect_id=effect_id)
        rows = self._ledger_select(query)
        if not rows:
            raise EffectNotFoundError(effect_id=effect_id, thread_id=query.thread_id)
        return effect_from_row(rows[0], self.serde)

    async def aget_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """Async `get_effect`."""
        query = EffectQuery(thread_id=_thread_id(config), effect_id=effect_id)
        rows = await self._aledger_select(query)
        if not rows:
            raise EffectNotFoundError(effect_id=effect_id, thread_id=query.thread_id)
        return effect_from_row(rows[0], self.serde)

    def resolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool,
        result: Any = None,
    ) -> Effect:
        """Record the outcome of an effect whose outcome is unknown.

        After a crash during a tool call, the intent stays `pending` and a
        replay raises `EffectOutcomeUnknownError`. Check the outside world,
        then call this: `applied=True` records the call as done (a replay
        returns `result` and does not run it; a rollback undoes it);
        `applied=False` records it as not done (a replay runs it).

        Raises:
            EffectNotFoundError: No such effect on that thread.
            EffectStateError: The effect is not `pending`.
        """
        effect = self.get_effect(config, effect_id)
        update = _resolution(self.serde, effect, applied=applied, result=result)
        if not self._ledger_update(update):
            raise EffectStateError(
                effect_id=effect_id,
                status=self.get_effect(config, effect_id).status.value,
                expected="pending",
            )
        return self.get_effect(config, effect_id)

    async def aresolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool,
        result: Any = None,
    ) -> Effect:
        """Async `resolve_effect`."""
        effect = await self.aget_effect(config, effect_id)
        update = _resolution(self.serde, effect, applied=applied, result=result)
        if not await self._aledger_update(update):
            current = await self.aget_effect(config, effect_id)
            raise EffectStateError(
                effect_id=effect_id, status=current.status.value, expected="pending"
            )
        return await self.aget_effect(config, effect_id)


def _thread_id(config: RunnableConfig) -> str:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        raise InvalidConfigError(
            "The config names no thread: `configurable.thread_id` is missing. "
            'Fix: pass {"configurable": {"thread_id": "<your thread>"}}.'
        )
    return str(thread_id)


def _query(
    config: RunnableConfig,
    *,
    status: EffectStatus | str | list[EffectStatus | str] | None,
    tool: str | None,
    before: int | None,
    limit: int | None,
) -> EffectQuery:
    configurable = (config or {}).get("configurable") or {}
    if status is None:
        statuses: tuple[str, ...] = ()
    elif isinstance(status, (str, EffectStatus)):
        statuses = (_status(status),)
    else:
        statuses = tuple(_status(s) for s in status)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidConfigError(
            f"limit must be a non-negative int, got {limit!r}. Fix: pass e.g. "
            "limit=50, or leave it out for every effect."
        )
    return EffectQuery(
        thread_id=_thread_id(config),
        checkpoint_ns=configurable.get("checkpoint_ns") or "",
        checkpoint_id=configurable.get("checkpoint_id"),
        statuses=statuses,
        tool=tool,
        before_seq=before,
        limit=limit,
    )


def _status(value: EffectStatus | str) -> str:
    try:
        return EffectStatus(value).value
    except ValueError:
        allowed = ", ".join(s.value for s in EffectStatus)
        raise InvalidConfigError(
            f"Unknown effect status {value!r}. Fix: use one of {allowed}."
        ) from None


def _resolution(
    serde: SerializerProtocol, effect: Effect, *, applied: bool, result: Any
) -> Update:
    now = utcnow()
    if applied:
        content: dict[str, Any] = {
            "result": result,
            "after": None,
            "notes": ["outcome resolved by an operator: applied"],
        }
        status = EffectStatus.APPLIED
    else:
        content = {
            "error": "resolved by an operator: not applied",
            "notes": ["outcome resolved by an operator: not applied"],
        }
        status = EffectStatus.FAILED
    payload = encode_payload(serde, content, tool=effect.tool)
    return Update(
        effect.id,
        {
            "status": status.value,
            "outcome_type": payload[0],
            "outcome": payload[1],
            "updated_at": now,
            "completed_at": now,
        },
        expect=(EffectStatus.PENDING.value,),
    )
