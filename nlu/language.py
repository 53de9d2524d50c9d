"""Which of the five languages a message is in, with the conversation's language as prior."""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import cached_property

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

SUPPORTED = ("de", "en", "tr", "ru", "ar")
_LINGUA = {
    Language.GERMAN: "de",
    Language.ENGLISH: "en",
    Language.TURKISH: "tr",
    Language.RUSSIAN: "ru",
    Language.ARABIC: "ar",
}
_TURKISH_ONLY = set("ğĞşŞıİ")
# Below this many letters a message ("ok", "2", "👍", "jo") says nothing about its language.
MIN_LETTERS = 4
# Switching away from the conversation's language needs this much confidence in another one.
SWITCH_CONFIDENCE = 0.85
SWITCH_WORDS = 3


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    for script in ("ARABIC", "CYRILLIC", "LATIN"):
        if name.startswith(script):
            return script
    return None


class LanguageIdentifier:
    """Tell the five languages apart; keep the conversation's unless it clearly changed."""

    @cached_property
    def _detector(self) -> LanguageDetector:
        return (
            LanguageDetectorBuilder.from_languages(*_LINGUA)
            .with_preloaded_language_models()
            .build()
        )

    def warm_up(self) -> None:
        """Load the models now rather than on the first customer's message."""
        self._detector.detect_language_of("hallo")

    @staticmethod
    def _by_script(text: str) -> str | None:
        letters = [c for c in text if c.isalpha()]
        if not letters:
            return None
        scripts = Counter(_script(c) for c in letters)
        # Arabic and Cyrillic each belong to one of the five languages: the script decides.
        if scripts["ARABIC"] / len(letters) >= 0.5:
            return "ar"
        if scripts["CYRILLIC"] / len(letters) >= 0.5:
            return "ru"
        if _TURKISH_ONLY & set(text):
            return "tr"
        return None

    def scores(self, text: str) -> dict[str, float]:
        """Return a confidence per supported language (they sum to about 1)."""
        by_script = self._by_script(text)
        if by_script is not None:
            return {by_script: 1.0}
        values = self._detector.compute_language_confidence_values(text)
        return {_LINGUA[v.language]: v.value for v in values if v.language in _LINGUA}

    def identify(
        self, text: str, *, current: str | None = None, hint: str | None = None
    ) -> str:
        """Return the language to answer in: the message's own when it is clear, else the prior."""
        prior = current or (hint if hint in SUPPORTED else None)
        letters = sum(1 for c in text if c.isalpha())
        by_script = self._by_script(text)
        if by_script is not None and (prior is None or letters >= 2):
            return by_script  # "да", "نعم": the script alone is decisive
        if letters < MIN_LETTERS:
            return prior or "de"
        scores = self.scores(text)
        if not scores:
            return prior or "de"
        best = max(scores, key=lambda k: scores[k])
        if prior is None or best == prior:
            return best
        words = len([w for w in text.split() if any(c.isalpha() for c in w)])
        # One or two foreign words ("sorry", "yes please") are no switch; a sentence is.
        if (words >= SWITCH_WORDS and scores[best] >= SWITCH_CONFIDENCE
                and scores.get(prior, 0) <= 0.1):
            return best
        return prior
