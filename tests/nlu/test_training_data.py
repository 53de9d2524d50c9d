"""The held-out sets: read per set, scored per set, and never trained on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nlu.commands import drop_held_out_lines as drop_held_out
from nlu.evaluate import score_by_set
from nlu.normalize import normalize
from nlu.project import PROJECT_ROOT
from nlu.quick import count_features
from nlu.training_data import (
    _ANNOTATION,
    LANGUAGES,
    Example,
    HeldOutLeak,
    check_held_out,
    load_examples,
)
from nlu.types import Parsed

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


def test_every_held_out_set_is_read_with_its_language_and_set() -> None:
    examples = load_examples("tests")
    sets = {(e.source, e.language) for e in examples}
    assert sets == {(s, lang) for s in ("tests", "tests/set2") for lang in LANGUAGES}
    assert not {e.source for e in load_examples("data")} & {"tests", "tests/set2"}


def test_each_set_is_scored_on_its_own() -> None:
    examples = [Example("de", "greet", "hallo", "tests"), Example("de", "thank", "danke", "tests"),
                Example("de", "greet", "moin", "tests/set2"),
                Example("de", "thank", "merci", "tests/set2")]
    parsed = [Parsed(intent, 0.9, (), "de") for intent in ("greet", "thank", "thank", "thank")]
    by_set = score_by_set(examples, parsed)
    f1 = {source: next(s for s in scores if s.language == "de").macro_f1
          for source, scores in by_set.items()}
    assert f1 == {"tests": 1.0, "tests/set2": pytest.approx((0 + 2 / 3) / 2)}


def test_the_quick_measurement_refuses_held_out_files() -> None:
    done = subprocess.run([sys.executable, "-m", "nlu.quick", "dev", "nlu/tests/set2/de.yml"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    assert done.returncode != 0 and "never reads the held-out sets" in done.stderr


def test_the_quick_measurement_reads_the_count_features_of_a_pipeline(tmp_path: Path) -> None:
    config = tmp_path / "candidate.yml"
    config.write_text("pipeline:\n  - name: WhitespaceTokenizer\n"
                      "  - name: CountVectorsFeaturizer\n    min_df: 2\n"
                      "  - name: CountVectorsFeaturizer\n    analyzer: char_wb\n"
                      "    min_ngram: 2\n    max_ngram: 5\n    max_features: 1000\n")
    word, chars = count_features(config)
    assert (word["analyzer"], word["min_df"], word["token_pattern"]) == ("word", 2, r"\S+")
    assert (chars["analyzer"], chars["ngram_range"], chars["max_features"]) == (
        "char_wb", (2, 5), 1000)


def test_no_annotated_text_maps_to_two_values() -> None:
    # Rasa's synonym table is keyed by the normalised text alone, across entities: Turkish
    # "[öne]{timing: earlier}" normalised to "one" turned the ordinal "option one" into "earlier".
    values: dict[str, set[str]] = {}
    for example in load_examples("data"):
        for match in _ANNOTATION.finditer(example.text):
            text = normalize(match.group(1))
            options = match.group(2)
            value = json.loads(options).get("value", text) if options.startswith("{") else text
            values.setdefault(text, set()).add(str(value))
    assert {text: found for text, found in values.items() if len(found) > 1} == {}
