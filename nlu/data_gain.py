"""Does a new training file help? Judged without the held-out set.

The language's existing training data is split into 5 fixed folds (by a hash of each line).
Each fold is scored by a model trained on the other four, once without and once with the new
file, whose lines join the training side only. Both variants see the same test folds, so the
difference is the new file's. Run (takes ~10 minutes for Arabic):
    .venv/bin/python -m nlu.data_gain nlu/data/ar/more7.yml
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from nlu.project import NLU_DIR, _rasa_env, cache_dir, rasa_executable
from nlu.training_data import Example, load_examples, read_file, write_training_data

FOLDS = 5


def fold_of(example: Example) -> int:
    """Return the example's fixed fold."""
    return int(hashlib.sha256(example.text.encode()).hexdigest(), 16) % FOLDS


def score_fold(work: Path, train: list[Example], test: list[Example]) -> tuple[float, float]:
    """Train on `train`, test on `test`; return accuracy and macro-F1."""
    shutil.rmtree(work, ignore_errors=True)
    write_training_data(work / "train", train)
    write_training_data(work / "test", test)
    rasa = str(rasa_executable())
    for command in (
        [rasa, "train", "nlu", "--nlu", str(work / "train"), "--config",
         str(NLU_DIR / "config.yml"), "--out", str(work / "models"), "--fixed-model-name", "m"],
        [rasa, "test", "nlu", "--nlu", str(work / "test"), "--model",
         str(work / "models" / "m.tar.gz"), "--out", str(work / "out"), "--no-plot"],
    ):
        subprocess.run(command, env=_rasa_env(), cwd=work, check=True,  # noqa: S603 - our rasa
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = json.loads((work / "out" / "intent_report.json").read_text())
    return float(report["accuracy"]), float(report["macro avg"]["f1-score"])


def main() -> int:
    """Compare the folds' scores without and with the new file."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new_file", type=Path)
    args = parser.parse_args()
    language = args.new_file.parent.name
    new = read_file(args.new_file, language)
    new_texts = {e.text for e in new}
    base = [e for e in load_examples("data")
            if e.language == language and e.text not in new_texts]
    work = cache_dir() / "data-gain"
    print("| fold | test lines | accuracy without | with | macro-F1 without | with |")
    print("|---|---|---|---|---|---|")
    totals = [0.0, 0.0, 0.0, 0.0]
    for fold in range(FOLDS):
        test = [e for e in base if fold_of(e) == fold]
        rest = [e for e in base if fold_of(e) != fold]
        without = score_fold(work / "without", rest, test)
        with_new = score_fold(work / "with", rest + new, test)
        for i, value in enumerate((without[0], with_new[0], without[1], with_new[1])):
            totals[i] += value / FOLDS
        print(f"| {fold} | {len(test)} | {without[0]:.4f} | {with_new[0]:.4f} | "
              f"{without[1]:.4f} | {with_new[1]:.4f} |", flush=True)
    print(f"| mean | | {totals[0]:.4f} | {totals[1]:.4f} | {totals[2]:.4f} | {totals[3]:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
