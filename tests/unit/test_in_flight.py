"""Which flow of this process performs a call (`drivers.IN_FLIGHT`)."""

from __future__ import annotations

from langgraph_rollback.core.ops import AwaitCall, Begin, BeginIfNewKey, Update
from langgraph_rollback.drivers import IN_FLIGHT, _claim, _settle, _written
from tests.unit.build import row


def test_the_flow_whose_intent_commits_performs_the_call_whichever_marked_it() -> None:
    """Two resumes of one thread: A marks the call first, B's intent commits
    first. B performs; A's finding the intent there must not end B's mark,
    so A waits for B instead of taking the intent for an abandoned call."""
    begin = Begin(row(effect_id="race-1"))
    a: list[str] = []
    b: list[str] = []
    assert (_claim(begin, a), _claim(begin, b)) == ("race-1", "race-1")
    assert (a, b) == (["race-1"], ["race-1"])
    _settle("race-1", b, _written(begin, (begin.row, True)))  # B's committed
    _settle("race-1", a, _written(begin, (begin.row, False)))  # A found it
    assert (a, b) == ([], ["race-1"])
    asked = AwaitCall("race-1", owner=None, timeout=0)
    assert IN_FLIGHT.wait(asked) == "running"  # B still performs it
    IN_FLIGHT.end("race-1", a)  # not A's to end
    assert IN_FLIGHT.wait(asked) == "running"
    IN_FLIGHT.end("race-1", b)
    assert IN_FLIGHT.wait(asked) == "gone"


def test_the_loser_learning_first_does_not_make_the_call_look_abandoned() -> None:
    """The same race, A's `Begin` answering first (B's intent committed, B not
    yet back from its own): the call is in flight all along, so a replay of
    A waits for B rather than running the call itself."""
    begin = Begin(row(effect_id="race-2"))
    a: list[str] = []
    b: list[str] = []
    _claim(begin, a)
    _claim(begin, b)
    _settle("race-2", a, _written(begin, (begin.row, False)))  # A found B's
    asked = AwaitCall("race-2", owner=None, timeout=0)
    assert (a, IN_FLIGHT.wait(asked)) == ([], "running")
    _settle("race-2", b, _written(begin, (begin.row, True)))
    assert (b, IN_FLIGHT.wait(asked)) == (["race-2"], "running")
    IN_FLIGHT.end("race-2", b)
    assert IN_FLIGHT.wait(asked) == "gone"


def test_an_intent_not_written_for_a_seen_key_is_not_in_flight() -> None:
    """`BeginIfNewKey` answered None: nothing was written, so the flow's mark
    goes until its `Begin` (or a replay) claims the call again."""
    first = BeginIfNewKey(row(effect_id="kin-1"))
    mine: list[str] = []
    _settle(_claim(first, mine), mine, _written(first, None))
    assert mine == []
    asked = AwaitCall("kin-1", owner=None, timeout=0)
    assert IN_FLIGHT.wait(asked) == "gone"


def test_a_restart_claims_the_call_and_only_the_winner_keeps_it() -> None:
    """Two replays restart one pending call (an `Update` with `starts_call`):
    both claim it before their write, the one whose write changed the row
    keeps its claim, the other's goes; an `Update` that starts nothing claims
    nothing."""
    restart = Update("restart-1", {"status": "pending"}, starts_call=True)
    a: list[str] = []
    b: list[str] = []
    assert (_claim(restart, a), _claim(restart, b)) == ("restart-1", "restart-1")
    asked = AwaitCall("restart-1", owner=None, timeout=0)
    _settle("restart-1", a, _written(restart, False))  # B restarted it first
    assert (a, IN_FLIGHT.wait(asked)) == ([], "running")
    _settle("restart-1", b, _written(restart, True))
    assert b == ["restart-1"]
    IN_FLIGHT.end("restart-1", b)
    assert IN_FLIGHT.wait(asked) == "gone"
    plain: list[str] = []
    assert _claim(Update("restart-1", {"status": "applied"}), plain) is None
    assert plain == [] and IN_FLIGHT.wait(asked) == "gone"
