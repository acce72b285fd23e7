"""The words of `EffectInFlightError`: whose process runs a call, and what to do."""

from __future__ import annotations

__all__ = ["process_words", "resolving_text", "running_text"]


def running_text(
    effect_id: str, tool: str, thread_id: str, where: str, rollback: bool
) -> str:
    """`EffectInFlightError`'s message for a replay or a rollback."""
    if rollback:
        what = (
            "the thread is not rolled back while its call may still act. Fix: "
            "wait for the run to finish (or its process to end), then roll "
            "back again"
        )
    else:
        what = (
            "an earlier attempt of the call has not finished, so it is not "
            "started again. Fix: wait for that run to finish (or its process "
            "to end), then resume"
        )
    return (
        f"Effect {effect_id} ({tool!r} on thread {thread_id!r}) is still "
        f"being performed {where}: {what}; if the process is gone, its "
        "outcome is settled then by `observe` or "
        f"`saver.resolve_effect(config, {effect_id!r}, applied=...)`."
    )


def resolving_text(
    effect_id: str, tool: str, thread_id: str, where: str, what: str
) -> str:
    """`EffectInFlightError`'s message for `resolve_effect` on a running call."""
    if what == "inverse":
        subject = (
            f"The inverse of effect {effect_id} ({tool!r} on thread {thread_id!r})"
        )
        outcome = "compensated="
    else:
        subject = f"Effect {effect_id} ({tool!r} on thread {thread_id!r})"
        outcome = "applied="
    return (
        f"{subject} is still being performed {where}, so its outcome is not "
        f"resolved by hand: it may still act, and a resolution now could start "
        f"it a second time. Fix: wait for it to end (its outcome is recorded "
        f"then); only if its process is gone, check the target and pass "
        f"{outcome}True|False."
    )


def process_words(owner: str) -> str:
    """`host#pid#start` as a person reads it: "process 123 on host web-1"."""
    host, _, rest = owner.partition("#")
    pid = rest.partition("#")[0] or "?"
    return f"process {pid} on host {host.split('|')[0] or '?'}"
