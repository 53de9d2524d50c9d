"""Fast approximate NLU measurements with scikit-learn alone, for scans before a real training.

The count features of a pipeline (`nlu/config.yml` unless --config names another) and the
class-weighted logistic regression, without Rasa (no regex or lexical features); its figures
matched the real server within 0.006 macro-F1. Runs in the Rasa environment, which has
scikit-learn:
    .rasa-venv/bin/python -m nlu.quick cv             # 5-fold CV on the training data
    .rasa-venv/bin/python -m nlu.quick dev FILE...    # train on the data, score FILEs
    .rasa-venv/bin/python -m nlu.quick gain FILE...   # 5 folds of the data, without/with FILEs
A FILE is a Rasa NLU file named <lang>.yml or lying in nlu/data/<lang>/. Never pass nlu/tests here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from nlu.normalize import normalize
from nlu.training_data import LANGUAGES, NLU_DIR, Example, load_examples, read_file

FALLBACK = 0.3  # nlu/config.yml's FallbackClassifier threshold


def rows(examples: list[Example]) -> list[tuple[str, str, str]]:
    """Return unique (language, intent, normalised text) rows, as training writes them."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in examples:
        text = normalize(e.plain)
        if text and (e.language, text) not in seen:
            seen.add((e.language, text))
            out.append((e.language, e.intent, text))
    return out


def count_features(config: Path) -> list[dict[str, Any]]:
    """Return the options of the pipeline's CountVectorsFeaturizers, as scikit-learn's."""
    pipeline = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    features = []
    for component in pipeline:
        if component["name"] != "CountVectorsFeaturizer":
            continue
        analyzer = component.get("analyzer", "word")
        options: dict[str, Any] = {
            "analyzer": analyzer,
            "ngram_range": (component.get("min_ngram", 1), component.get("max_ngram", 1)),
            "min_df": component.get("min_df", 1),
            "max_df": component.get("max_df", 1.0),
            "max_features": component.get("max_features"),
            "lowercase": False,  # the text is normalised (lower case) already
        }
        if analyzer == "word":  # the WhitespaceTokenizer's tokens
            options["token_pattern"] = r"\S+"  # noqa: S105 - a regex, not a password
        features.append(options)
    return features


def fit_predict(train: list[tuple[str, str, str]], texts: list[str], threshold: float,
                config: Path = NLU_DIR / "config.yml") -> Any:
    """Train on `train`; return the predicted intents of `texts` (nlu_fallback below threshold)."""
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    features = [CountVectorizer(**options) for options in count_features(config)]
    x_train = hstack([f.fit_transform([r[2] for r in train]) for f in features]).tocsr()
    x_test = hstack([f.transform(texts) for f in features]).tocsr()
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500, random_state=42)
    probabilities = model.fit(x_train, [r[1] for r in train]).predict_proba(x_test)
    return np.where(probabilities.max(1) < threshold, "nlu_fallback",
                    model.classes_[probabilities.argmax(1)])


def summary(name: str, gold: Any, predicted: Any, languages: Any) -> str:
    """Return one line: macro-F1 over all and per language."""
    from sklearn.metrics import f1_score

    # Macro over the true intents only: nlu_fallback is an error, not a class of its own.
    overall = f1_score(gold, predicted, labels=sorted(set(gold)), average="macro")
    parts = [f"{name}: all {overall:.4f}"]
    for language in LANGUAGES:
        mask = languages == language
        if mask.any():
            score = f1_score(gold[mask], predicted[mask], labels=sorted(set(gold[mask])),
                             average="macro")
            parts.append(f"{language} {score:.4f}")
    return " ".join(parts)


def read(paths: list[Path]) -> list[Example]:
    """Read extra files; the language is the file's stem or its folder's name."""
    held_out = NLU_DIR / "tests"
    if any(path.resolve().is_relative_to(held_out) for path in paths):
        sys.exit("nlu.quick never reads the held-out sets")
    return [e for path in paths for e in read_file(
        path, path.stem if path.stem in LANGUAGES else path.parent.name)]


def main() -> int:
    """Run one of the three measurements."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("cv", "dev", "gain"))
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--threshold", type=float, default=FALLBACK)
    parser.add_argument("--config", type=Path, default=NLU_DIR / "config.yml",
                        help="the pipeline whose count features to use")
    args = parser.parse_args()
    extra = rows(read(args.files))
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    extra_keys = {(r[0], r[2]) for r in extra}
    data = [r for r in rows(load_examples("data")) if (r[0], r[2]) not in extra_keys]
    if args.mode == "dev":
        predicted = fit_predict(data, [r[2] for r in extra], args.threshold, args.config)
        gold, languages = np.array([r[1] for r in extra]), np.array([r[0] for r in extra])
        print(summary("dev", gold, predicted, languages))
        return 0
    gold, languages = np.array([r[1] for r in data]), np.array([r[0] for r in data])
    variants: list[tuple[str, list[tuple[str, str, str]]]] = (
        [("cv", [])] if args.mode == "cv" else [("without", []), ("with", extra)])
    predicted = {name: np.empty(len(data), dtype=object) for name, _ in variants}
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for train, test in folds.split(data, [f"{r[0]}:{r[1]}" for r in data]):
        for name, added in variants:
            predicted[name][test] = fit_predict([data[i] for i in train] + added,
                                                [data[i][2] for i in test], args.threshold,
                                                args.config)
    for name, _ in variants:
        print(summary(name, gold, predicted[name], languages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
