"""The held-out guard: training refuses held-out messages, and a command removes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.commands import drop_held_out_lines as drop_held_out
from nlu.training_data import Example, HeldOutLeak, check_held_out

TRAINING = """version: "3.1"
nlu:
- intent: thank
  examples: |
    - Danke schön!
    - vielen dank für die info
- intent: identify
  examples: |
    - meine nummer ist [40000001](order_number)
    - auftrag [40000002](order_number)
"""
HELD_OUT = [Example("de", "thank", "danke schon"),
            Example("de", "identify", "auftrag [40000002](order_number)")]


def test_training_data_with_a_held_out_message_is_refused() -> None:
    train = [Example("de", "thank", "DANKE SCHÖN!!!")]  # the same after normalisation
    with pytest.raises(HeldOutLeak, match="held out"):
        check_held_out(train, HELD_OUT)


def test_the_command_deletes_exactly_the_coinciding_lines(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(TRAINING, encoding="utf-8")
    dropped = drop_held_out([path], HELD_OUT)
    assert sorted(dropped) == ["Danke schön!", "auftrag 40000002"]
    assert path.read_text(encoding="utf-8") == TRAINING.replace(
        "    - Danke schön!\n", "").replace("    - auftrag [40000002](order_number)\n", "")
    assert drop_held_out([path], HELD_OUT) == []  # nothing left to drop
