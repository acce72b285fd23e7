"""Waiting for a condition, with a deadline: tests never sleep for luck."""

from __future__ import annotations

import time
from collections.abc import Callable

DEADLINE_S = 30.0
"""Long enough for a loaded machine; a condition that holds returns at once."""


def wait_for(
    condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
) -> None:
    """Return once `condition()` holds; fail naming `what` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.01)
