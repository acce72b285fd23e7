"""How a rollback treats what it cannot simply undo, checked when given."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.audit import check_by

__all__ = [
    "OnConflict",
    "OnFailure",
    "OnIrreversible",
    "Policies",
    "new_rollback_id",
    "skip_ids",
]

OnIrreversible = Literal["skip", "abort"]
OnConflict = Literal["abort", "skip", "force"]
OnFailure = Literal["stop", "continue"]


@dataclass(frozen=True)
class Policies:
    """How a rollback treats what it cannot simply undo.

    Attributes:
        on_irreversible: "skip" (default) leaves irreversible and undeclared
            effects in place and reports them; "abort" refuses to roll back
            at all when there is one.
        on_conflict: "abort" (default) refuses to roll back when a target
            changed since the agent touched it, and stops (status "stopped")
            when one changes while the rollback runs; "skip" leaves those
            effects and undoes the rest; "force" undoes them anyway.
        on_failure: "stop" (default) stops at the first inverse that raises,
            does not restore the state, and leaves the ledger so a rerun
            continues there; "continue" runs the remaining inverses first.
        inverse_timeout: Seconds an inverse may take; past that it counts as
            failed (and stays claimed while it runs). None waits forever.
        skip: Effect ids (or a model's tool call ids) to leave alone.
        approved: Those of `skip` a human approver chose to leave (reported
            as "skipped by approver"; the caller's own as "skipped (skip=)").
        by: Who chose these policies, kept in the audit trail when they
            override the plan (`skip`, `on_conflict="force"`); "unknown"
            when None.
        reason: Why, kept with it.

    Raises:
        InvalidConfigError: A policy is not one of these, naming it and the fix.
    """

    on_irreversible: OnIrreversible = "skip"
    on_conflict: OnConflict = "abort"
    on_failure: OnFailure = "stop"
    inverse_timeout: float | None = None
    skip: frozenset[str] = field(default_factory=frozenset)
    approved: frozenset[str] = field(default_factory=frozenset)
    by: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    """The person who asked for this rollback (kept in the audit trail as a
    `rollback` decision); None for a rollback a graph runs by itself."""
    claimed_by: str | None = None
    """The name the caller gave when `by` is the server's authenticated user
    and that name differs (kept in the audit trail's details)."""

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("on_irreversible", self.on_irreversible, ("skip", "abort")),
            ("on_conflict", self.on_conflict, ("abort", "skip", "force")),
            ("on_failure", self.on_failure, ("stop", "continue")),
        ):
            if value not in allowed:
                raise InvalidConfigError(
                    f"{name}={value!r} is not a policy. Fix: use one of "
                    f"{', '.join(repr(a) for a in allowed)}."
                )
        timeout = self.inverse_timeout
        if timeout is not None and not _positive_number(timeout):
            raise InvalidConfigError(
                f"inverse_timeout={timeout!r} is not a timeout. Fix: pass a "
                "positive number of seconds (e.g. inverse_timeout=30), or None "
                "to wait forever."
            )
        if not isinstance(self.skip, frozenset):
            object.__setattr__(self, "skip", skip_ids(self.skip))
        if not isinstance(self.approved, frozenset):
            object.__setattr__(self, "approved", skip_ids(self.approved))
        check_by(self.by, self.reason)

    def with_skip(
        self,
        skip: Iterable[str],
        *,
        by: str | None = None,
        reason: str | None = None,
        approver: bool = False,
    ) -> Policies:
        """The same policies, leaving these effect ids alone too (chosen by
        `by`, for `reason`, when given; by a human approver, with `approver`)."""
        ids = skip_ids(skip)
        return replace(
            self,
            skip=self.skip | ids,
            approved=self.approved | ids if approver else self.approved,
            by=by or self.by,
            reason=reason or self.reason,
        )

    def skip_reason(self, effect_id: str) -> str:
        """Why the report lists a skipped effect: who chose to leave it."""
        if effect_id in self.approved:
            return "skipped by approver"
        return "skipped (skip=)"


def _positive_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value > 0


def skip_ids(values: Iterable[str] | None) -> frozenset[str]:
    """A collection of effect ids, checked.

    Raises:
        InvalidConfigError: One string (which would be read character by
            character), or an id that is not a string.
    """
    if values is None:
        return frozenset()
    if isinstance(values, (str, bytes)):
        raise InvalidConfigError(
            f"skip={values!r} is one string, not a collection of effect ids. "
            f"Fix: pass a list, e.g. skip=[{values!r}]."
        )
    try:
        ids = list(values)
    except TypeError:
        raise InvalidConfigError(
            f"skip={values!r} is not a collection of effect ids. Fix: pass a "
            "list of ids from saver.list_effects(config)."
        ) from None
    bad = [v for v in ids if not isinstance(v, str) or not v]
    if bad:
        raise InvalidConfigError(
            f"skip= holds {bad[0]!r}, not an effect id. Fix: pass the ids (strings) "
            "from saver.list_effects(config)."
        )
    return frozenset(ids)


def new_rollback_id() -> str:
    """A fresh rollback id."""
    return str(uuid.uuid4())
