"""What the flows of this process are doing with the calls in flight.

A test that holds one flow open while another decides what to do with its
call ends the hold once that decision is taken, not after a fixed window.
"""

from __future__ import annotations

from langgraph_rollback.drivers import IN_FLIGHT


def awaited(effect_id: str | None = None) -> bool:
    """Whether a flow of this process waits for the claim on `effect_id` (any
    call, with None) to end: it found the call in flight and did not take it
    for an abandoned one. A waiter makes the claim's event; it stays until
    the call ends."""
    with IN_FLIGHT._lock:
        calls = dict(IN_FLIGHT._calls)
    if effect_id is not None:
        calls = {effect_id: calls[effect_id]} if effect_id in calls else {}
    return any(event is not None for event, _ in calls.values())
