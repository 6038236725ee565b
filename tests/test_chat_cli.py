"""A `flipsync chat` question that got no answer ends with status 1 (found by a newcomer: a
budget's refusal printed "(no answer: over_budget ...)" and exited 0)."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli_first_hour import flipsync


def test_an_unanswered_question_exits_1(tmp_path: Path) -> None:
    asked = flipsync("chat", "--tenant", "nobody", "which item sold best?", env={}, cwd=tmp_path)
    assert asked.returncode == 1, asked.stderr
    assert asked.stdout.startswith("(no answer: no listings for nobody"), asked.stdout
