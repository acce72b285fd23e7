"""A scripted driver for the core's flows: assert each operation, answer it.

A flow yields operations and receives their results. `Script` stands in for
a driver: it lets a test check each operation the flow yields and choose
what comes back, a result (`send`) or an error (`throw`), then check how the
flow ended (`returns`, `raises`):

```python
flow = Script(record_flow(ctx, definition, {"path": "a"}, ...))
begin = flow.expect(Begin)
flow.send((begin.row, True))
flow.reply(Perform, Outcome(value="done"))
flow.reply(Update, True, expect=("pending",))
assert flow.returns() == "done"
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from langgraph_rollback.core.ops import BeginIfNewKey, Flow, Op

__all__ = ["Script"]

OpT = TypeVar("OpT", bound=Op[Any])
E = TypeVar("E", bound=BaseException)


class Script:
    """Drives one flow by hand, one operation at a time."""

    def __init__(self, flow: Flow[Any], *, key_seen: bool = False) -> None:
        """With `key_seen`, every `BeginIfNewKey` is answered None (another
        effect of the thread has the call's key) as it comes, so a test of
        the longer way a call looks for its earlier rows scripts only that."""
        self._flow = flow
        self._key_seen = key_seen
        self._op: Op[Any] | None = None
        self._ended: tuple[str, Any] = ("running", None)
        self._advance(lambda: next(flow))

    def expect(self, kind: type[OpT], **fields: Any) -> OpT:
        """The operation the flow yields now; it must be a `kind` with these fields."""
        op = self._op
        if op is None:
            how, what = self._ended
            raise AssertionError(f"expected {kind.__name__}, the flow {how} {what!r}")
        if not isinstance(op, kind):
            raise AssertionError(f"expected {kind.__name__}, the flow yields {op!r}")
        for name, want in fields.items():
            got = getattr(op, name)
            if got != want:
                raise AssertionError(f"{kind.__name__}.{name} is {got!r}, not {want!r}")
        return op

    @property
    def current(self) -> Op[Any] | None:
        """The operation the flow yields now (None once it has ended)."""
        return self._op

    def send(self, result: Any = None) -> None:
        """Answer the current operation with `result`."""
        self._current()
        self._advance(lambda: self._flow.send(result))

    def throw(self, error: BaseException) -> None:
        """Answer the current operation with an error, as a driver does."""
        self._current()
        self._advance(lambda: self._flow.throw(error))

    def reply(self, kind: type[OpT], result: Any = None, **fields: Any) -> OpT:
        """`expect(kind, **fields)`, then `send(result)`; the operation."""
        op = self.expect(kind, **fields)
        self.send(result)
        return op

    def returns(self) -> Any:
        """What the flow returned (it must have ended without an error)."""
        how, what = self._ended
        if how == "raised":
            raise AssertionError(f"the flow raised {what!r}") from what
        if how != "returned":
            raise AssertionError(f"the flow still yields {self._op!r}")
        return what

    def raises(self, kind: type[E]) -> E:
        """The error the flow raised; it must be a `kind`."""
        how, what = self._ended
        if how != "raised" or not isinstance(what, kind):
            raise AssertionError(
                f"expected the flow to raise {kind.__name__}; it {how} {what!r}"
                + (f", yielding {self._op!r}" if self._op is not None else "")
            )
        return what

    def _current(self) -> Op[Any]:
        if self._op is None:
            raise AssertionError(f"nothing to answer: the flow {self._ended[0]}")
        return self._op

    def _advance(self, step: Callable[[], Op[Any]]) -> None:
        try:
            self._op = step()
            while self._key_seen and isinstance(self._op, BeginIfNewKey):
                self._op = self._flow.send(None)
        except StopIteration as stop:
            self._op, self._ended = None, ("returned", stop.value)
        except BaseException as exc:
            self._op, self._ended = None, ("raised", exc)
