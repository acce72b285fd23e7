"""Writing an intent in one operation when its call key is new to the thread
(`BeginIfNewKey`), on every saver: the same answers as `Begin` and a lookup,
read back from the store itself."""

from __future__ import annotations

import uuid

from langgraph_rollback import BaseRollbackSaver
from langgraph_rollback.core.ledger import LedgerRow, changed_row
from langgraph_rollback.core.ops import Begin, BeginIfNewKey, Select
from langgraph_rollback.core.query import EffectQuery
from tests.unit.build import row


def intent(thread: str, key: str) -> LedgerRow:
    return changed_row(
        row(str(uuid.uuid4()), status="pending", call_key=key),
        thread_id=thread,
        seq=0,
        base_checkpoint_id=None,
    )


def stored(saver: BaseRollbackSaver, thread: str) -> list[tuple[str, str]]:
    rows = saver.execute(Select(EffectQuery(thread_id=thread)))
    return sorted((r.effect_id, r.call_key) for r in rows)


def test_a_new_key_is_written_and_a_seen_one_is_not(saver: BaseRollbackSaver) -> None:
    thread = f"t-{uuid.uuid4()}"
    first = intent(thread, "v2:write:aa#0")
    written, inserted = saver.execute(BeginIfNewKey(first))
    assert inserted and written.seq > 0
    assert stored(saver, thread) == [(first.effect_id, "v2:write:aa#0")]

    # The same effect again: the row as stored, nothing new.
    again, inserted = saver.execute(BeginIfNewKey(first))
    assert not inserted and again.seq == written.seq

    # Another effect with the key: nothing written, the flow looks further.
    other = intent(thread, "v2:write:aa#0")
    assert saver.execute(BeginIfNewKey(other)) is None
    assert stored(saver, thread) == [(first.effect_id, "v2:write:aa#0")]
    # `Begin` writes it regardless (the flow found no earlier row for it).
    _, inserted = saver.execute(Begin(other))
    assert inserted and len(stored(saver, thread)) == 2

    # Keys are per thread: another thread's effect with the key is no kin.
    elsewhere = intent(f"t-{uuid.uuid4()}", "v2:write:aa#0")
    _, inserted = saver.execute(BeginIfNewKey(elsewhere))
    assert inserted
