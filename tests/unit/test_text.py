"""Values shortened for messages: whole arguments, cuts at separators, and of
two observations only what differs."""

from __future__ import annotations

from langgraph_rollback.core.decide import changed_since
from langgraph_rollback.core.report import call_text
from langgraph_rollback.core.text import clip
from tests.unit.build import effect


def test_a_call_that_fits_is_shown_whole() -> None:
    assert call_text(effect(args={"path": "a.txt"})) == "write(path='a.txt')"


def test_arguments_are_shown_whole_while_they_fit() -> None:
    long = effect(args={"path": "docs/a.md", "content": "x" * 80})
    assert call_text(long) == "write(path='docs/a.md', ...)"


def test_a_long_first_argument_is_cut_at_a_separator() -> None:
    deep = effect(args={"work_tree": "/tmp/lgrb-notebook-abc/repo-xyz/" + "d" * 40})
    text = call_text(deep, 40)
    assert text == "write(work_tree='/tmp/lgrb-notebook-abc/...)"


def test_clip_cuts_mid_word_only_without_a_separator_near_the_end() -> None:
    assert clip("short", 10) == "short"
    assert clip("a" * 30, 10) == "aaaaaaa..."
    assert clip("one two " + "x" * 30, 12) == "one two ..."


def test_a_conflict_names_only_the_keys_that_changed() -> None:
    after = {"root": "/tmp/w", "path": "CHANGELOG.md", "sha256": "ab12"}
    now = {"root": "/tmp/w", "path": "CHANGELOG.md", "sha256": "cd34"}
    assert changed_since(after, now) == (
        "the target changed since the agent touched it "
        "(expected {'sha256': 'ab12'}, found {'sha256': 'cd34'})"
    )
    assert changed_since("v1", None) == (
        "the target changed since the agent touched it (expected 'v1', found None)"
    )
