"""Evaluate the model on the held-out sets per language, and by k-fold cross-validation."""

from __future__ import annotations

import asyncio
import json
import platform
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from nlu.client import NluClient
from nlu.language import LanguageIdentifier
from nlu.project import _rasa_env, cache_dir, model_hash, rasa_executable
from nlu.training_data import LANGUAGES, Example, load_examples, write_training_data
from nlu.types import Parsed


@dataclass
class LanguageScore:
    """Held-out results of one language."""

    language: str
    total: int = 0
    correct: int = 0
    language_correct: int = 0
    long_total: int = 0
    long_language_correct: int = 0
    kept_with_prior: int = 0
    macro_f1: float = 0.0
    per_intent_f1: dict[str, float] = field(default_factory=dict)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def accuracy(self) -> float:
        """Share of messages whose intent was right."""
        return self.correct / self.total if self.total else 0.0

    @property
    def language_accuracy(self) -> float:
        """Share of messages whose language was identified right, with no prior."""
        return self.language_correct / self.total if self.total else 0.0


LONG = 12  # letters; shorter messages ("ok", "hi", "2") carry no language of their own
IDENTIFY = LanguageIdentifier()


def macro_f1(pairs: list[tuple[str, str]], labels: list[str]) -> dict[str, float]:
    """Return the F1 of each label from (expected, predicted) pairs."""
    scores = {}
    for label in labels:
        tp = sum(1 for e, p in pairs if e == label and p == label)
        fp = sum(1 for e, p in pairs if e != label and p == label)
        fn = sum(1 for e, p in pairs if e == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores


async def parse_all(client: NluClient, examples: list[Example], concurrency: int = 16
                    ) -> list[Parsed]:
    """Parse every example with no language prior, a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(example: Example) -> Parsed:
        async with gate:
            return await client.parse(example.plain)

    return await asyncio.gather(*(one(e) for e in examples))


def score_held_out(examples: list[Example], parsed: list[Parsed]) -> list[LanguageScore]:
    """Score the parses of the held-out set per language."""
    results = []
    for language in LANGUAGES:
        rows = [(e, p) for e, p in zip(examples, parsed, strict=True) if e.language == language]
        score = LanguageScore(language, total=len(rows))
        pairs = [(e.intent, p.intent) for e, p in rows]
        score.correct = sum(1 for e, p in pairs if e == p)
        score.language_correct = sum(1 for e, p in rows if p.language == e.language)
        long_rows = [(e, p) for e, p in rows if sum(c.isalpha() for c in e.plain) >= LONG]
        score.long_total = len(long_rows)
        score.long_language_correct = sum(1 for e, p in long_rows if p.language == e.language)
        score.kept_with_prior = sum(1 for e, _ in rows if IDENTIFY.identify(
            e.plain, current=e.language) == e.language)
        labels = sorted({e for e, _ in pairs})
        score.per_intent_f1 = macro_f1(pairs, labels)
        score.macro_f1 = sum(score.per_intent_f1.values()) / len(labels) if labels else 0.0
        score.confusions = Counter((e, p) for e, p in pairs if e != p)
        results.append(score)
    return results


def cross_validate(folds: int, config: Path) -> dict[str, float]:
    """Run Rasa's k-fold cross-validation on the normalised training data."""
    work = cache_dir() / "crossval" / model_hash()
    cached = work / "summary.json"
    if cached.exists():  # the same data and pipeline give the same folds
        return dict(json.loads(cached.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    write_training_data(work / "data", load_examples("data"))
    subprocess.run(  # noqa: S603 - our own venv's rasa
        [str(rasa_executable()), "test", "nlu", "--nlu", str(work / "data"), "--config",
         str(config), "--cross-validation", "--folds", str(folds), "--out", str(work / "out"),
         "--no-plot", "--no-errors"],
        check=True, cwd=work, env=_rasa_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    report = json.loads((work / "out" / "intent_report.json").read_text())
    summary = {"accuracy": float(report["accuracy"]),
               "macro_f1": float(report["macro avg"]["f1-score"]),
               "weighted_f1": float(report["weighted avg"]["f1-score"])}
    cached.write_text(json.dumps(summary))
    return summary


def score_by_set(examples: list[Example], parsed: list[Parsed]
                 ) -> dict[str, list[LanguageScore]]:
    """Score each held-out set on its own (set 1 in nlu/tests, later ones in subfolders)."""
    result = {}
    for source in sorted({e.source for e in examples}):
        rows = [(e, p) for e, p in zip(examples, parsed, strict=True) if e.source == source]
        result[source] = score_held_out([e for e, _ in rows], [p for _, p in rows])
    return result


def render_report(scores: list[LanguageScore], crossval: dict[str, float] | None,
                  *, command: str, seconds: float, config: Path,
                  by_set: dict[str, list[LanguageScore]] | None = None) -> str:
    """Return the Markdown of docs/nlu-report.md."""
    lines = [
        "# NLU evaluation",
        "",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')} "
        f"({platform.machine()}, {platform.python_version()} client, model "
        f"`nlu-{model_hash()}`, pipeline `{config.relative_to(config.parents[1])}`), "
        f"in {seconds:.0f} s.",
        "",
        "## Held-out test sets (`nlu/tests/<lang>.yml` and `nlu/tests/set2/<lang>.yml`, "
        "never trained on)",
        "",
        "Each message goes through the real Rasa server via the bot's client, with no "
        "language prior (the harder case: in a chat the conversation's language helps).",
        "",
        "Language id is shown three ways: with no prior on every message; with no prior on "
        f"messages of at least {LONG} letters; and with the conversation's language as prior "
        "(the share that is *not* wrongly switched away from it).",
        "",
        "| language | messages | intent accuracy | macro-F1 | language id, no prior | "
        f"no prior, ≥ {LONG} letters | kept with prior |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(f"| {s.language} | {s.total} | {s.accuracy:.3f} | {s.macro_f1:.3f} | "
                     f"{s.language_accuracy:.3f} | "
                     f"{s.long_language_correct / max(s.long_total, 1):.3f} | "
                     f"{s.kept_with_prior / max(s.total, 1):.3f} |")
    total = sum(s.total for s in scores)
    long_total = max(sum(s.long_total for s in scores), 1)
    lines.append(f"| all | {total} | {sum(s.correct for s in scores) / total:.3f} | "
                 f"{sum(s.macro_f1 for s in scores) / len(scores):.3f} | "
                 f"{sum(s.language_correct for s in scores) / total:.3f} | "
                 f"{sum(s.long_language_correct for s in scores) / long_total:.3f} | "
                 f"{sum(s.kept_with_prior for s in scores) / total:.3f} |")
    if by_set and len(by_set) > 1:
        lines += ["", "Macro-F1 of each set on its own (set 1 written in session 1, set 2 in "
                  "session 3 by writers who saw only the intent list):", "",
                  "| set | " + " | ".join(s.language for s in scores) + " |",
                  "|---|" + "---|" * len(scores)]
        for source, set_scores in by_set.items():
            lines.append(f"| `nlu/{source}` ({sum(s.total for s in set_scores)}) | "
                         + " | ".join(f"{s.macro_f1:.3f}" for s in set_scores) + " |")
    lines += ["", "## Most confused intent pairs (expected → predicted, all languages)", ""]
    confusions: Counter[tuple[str, str]] = Counter()
    for s in scores:
        confusions.update(s.confusions)
    for (expected, predicted), count in confusions.most_common(12):
        lines.append(f"- {expected} → {predicted}: {count}")
    weakest: dict[str, list[str]] = defaultdict(list)
    for s in scores:
        for intent, f1 in sorted(s.per_intent_f1.items(), key=lambda kv: kv[1])[:3]:
            weakest[s.language].append(f"{intent} {f1:.2f}")
    lines += ["", "## Weakest intents per language (F1)", ""]
    lines += [f"- {lang}: {', '.join(items)}" for lang, items in weakest.items()]
    if crossval:
        lines += ["", "## Cross-validation on the training data (5 folds, all languages)", "",
                  f"accuracy {crossval['accuracy']:.3f}, macro-F1 {crossval['macro_f1']:.3f}, "
                  f"weighted F1 {crossval['weighted_f1']:.3f}"]
    return "\n".join(lines) + "\n"
