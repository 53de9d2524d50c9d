"""The training and test data: read it, guard the held-out set, write it normalised."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from nlu.normalize import normalize, normalize_training_example

NLU_DIR = Path(__file__).resolve().parent
LANGUAGES = ("de", "en", "tr", "ru", "ar")
_ANNOTATION = re.compile(r"\[([^\]]+)\](\{[^}]*\}|\([^)]*\))")


class HeldOutLeak(Exception):
    """Training data contains a message of the held-out test set."""


def data_files(folder: str = "data") -> list[Path]:
    """Return the training files (one folder per language) or the test files (`<lang>.yml`)."""
    if folder == "data":
        return sorted((NLU_DIR / "data").glob("*/*.yml"))
    root = NLU_DIR / folder  # set 1 at the top, later sets in their own folders (set2/…)
    return sorted([*root.glob("*.yml"), *root.glob("*/*.yml")])


@dataclass(frozen=True)
class Example:
    """One labelled message of the training or test data."""

    language: str
    intent: str
    text: str  # with entity annotations, as written
    source: str = ""  # the file's folder under nlu/: "data/de", "tests", "tests/set2"

    @property
    def plain(self) -> str:
        """Return the text without annotation markup."""
        return _ANNOTATION.sub(lambda m: m.group(1), self.text)


def read_file(path: Path, language: str) -> list[Example]:
    """Read the examples of one Rasa NLU file."""
    source = path.parent.relative_to(NLU_DIR).as_posix() if path.is_relative_to(NLU_DIR) else ""
    examples = []
    for item in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        for line in item["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                examples.append(Example(language, item["intent"], line[2:].strip(), source))
    return examples


def load_examples(folder: str = "data") -> list[Example]:
    """Read every example of the training data (or of `nlu/tests` with folder="tests")."""
    return [example for path in data_files(folder)
            for example in read_file(path, path.parent.name if folder == "data" else path.stem)]


def check_held_out(train: list[Example], test: list[Example]) -> None:
    """Refuse training data that contains a held-out test message (after normalisation)."""
    held_out = {normalize(e.plain) for e in test}
    leaked = sorted({e.plain for e in train if normalize(e.plain) in held_out})
    if leaked:
        raise HeldOutLeak(
            f"{len(leaked)} training examples are also in nlu/tests (held out): "
            + "; ".join(leaked[:5])
        )


def write_training_data(out_dir: Path, examples: list[Example]) -> None:
    """Write normalised examples as one Rasa NLU file per language, plus the regexes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for language in LANGUAGES:
        by_intent: dict[str, list[str]] = {}
        seen: set[str] = set()
        for example in examples:
            if example.language != language:
                continue
            text = normalize_training_example(example.text)
            if not text or text in seen:
                continue
            seen.add(text)
            by_intent.setdefault(example.intent, []).append(text)
        lines = ['version: "3.1"', "nlu:"]
        for intent, texts in by_intent.items():
            lines += [f"- intent: {intent}", "  examples: |"]
            lines += [f"    - {text}" for text in texts]
        (out_dir / f"{language}.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(NLU_DIR / "regex.yml", out_dir / "regex.yml")


