"""The in-flight marks (`drivers.IN_FLIGHT`) raced from real threads and a
forked child: a call in flight is never "gone" while it runs, and a waiter
never waits on after it ended."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from typing import Any

from langgraph_rollback._liveness import process
from langgraph_rollback.core.ops import AwaitCall
from langgraph_rollback.drivers import IN_FLIGHT


def _asked(effect_id: str, timeout: float, owner: str | None = None) -> AwaitCall:
    return AwaitCall(effect_id, owner=owner, timeout=timeout)


def _timed_wait(effect_id: str, answers: list[tuple[str, float]]) -> None:
    began = time.monotonic()
    answer = IN_FLIGHT.wait(_asked(effect_id, 30))
    answers.append((answer, time.monotonic() - began))


def test_waiters_racing_the_end_of_a_call_each_return_at_once() -> None:
    for _ in range(200):
        effect_id = f"race-{uuid.uuid4()}"
        owner = object()
        IN_FLIGHT.start(effect_id, owner)
        answers: list[tuple[str, float]] = []

        threads = [
            threading.Thread(target=_timed_wait, args=(effect_id, answers))
            for _ in range(4)
        ]
        for t in threads[:2]:
            t.start()
        IN_FLIGHT.end(effect_id, owner)
        for t in threads[2:]:
            t.start()  # after the end: nothing to wait for
        for t in threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in threads)
        assert {a for a, _ in answers} <= {"finished", "gone"}, answers
        assert max(s for _, s in answers) < 5
        assert effect_id not in IN_FLIGHT._calls


def test_a_call_in_flight_is_running_to_every_waiter_until_it_ends() -> None:
    effect_id = f"live-{uuid.uuid4()}"
    owner = object()
    IN_FLIGHT.start(effect_id, owner)
    running = threading.Event()
    running.set()
    wrong: list[str] = []

    def poller() -> None:
        while True:
            answer = IN_FLIGHT.wait(_asked(effect_id, 0))
            if running.is_set() and answer != "running":
                wrong.append(answer)
            if answer == "gone":
                return

    threads = [threading.Thread(target=poller) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        IN_FLIGHT.start(effect_id, owner)  # a second claim by the same flow
        IN_FLIGHT.end(effect_id, object())  # not that flow's to end
    running.clear()
    IN_FLIGHT.end(effect_id, owner)
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []


def test_a_call_claimed_is_in_flight_until_its_owner_ends() -> None:
    effect_id = f"taken-{uuid.uuid4()}"
    owner = object()
    IN_FLIGHT.start(effect_id, owner)
    result: list[str] = []
    waiter = threading.Thread(
        target=lambda: result.append(IN_FLIGHT.wait(_asked(effect_id, 30)))
    )
    waiter.start()
    assert IN_FLIGHT.wait(_asked(effect_id, 0)) == "running"
    IN_FLIGHT.end(effect_id, object())
    assert IN_FLIGHT.wait(_asked(effect_id, 0)) == "running"
    IN_FLIGHT.end(effect_id, owner)
    waiter.join(timeout=10)
    assert result == ["finished"]
    assert IN_FLIGHT.wait(_asked(effect_id, 0)) == "gone"


def _in_child(effect_id: str, parent: str, out: Any) -> None:
    out.put(
        (
            IN_FLIGHT.wait(_asked(effect_id, 0)),
            IN_FLIGHT.wait(_asked(effect_id, 5, owner=parent)),
            effect_id in IN_FLIGHT._calls,
        )
    )


def test_a_forked_child_asks_the_parent_s_process_not_its_marks() -> None:
    """The parent performs the call (and a thread of it waits on it): the
    child has no mark of it, finds it running by the parent's liveness, and
    does not block on the parent's event."""
    effect_id = f"fork-{uuid.uuid4()}"
    owner = object()
    IN_FLIGHT.start(effect_id, owner)
    waiting = threading.Thread(target=IN_FLIGHT.wait, args=(_asked(effect_id, 30),))
    waiting.start()
    try:
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_in_child, args=(effect_id, process(), out))
        child.start()
        began = time.monotonic()
        assert out.get(timeout=30) == ("gone", "running", False)
        assert time.monotonic() - began < 5
        child.join(timeout=30)
        assert child.exitcode == 0
    finally:
        IN_FLIGHT.end(effect_id, owner)
        waiting.join(timeout=10)
    assert not waiting.is_alive()
