"""Text normalisation that runs before the model, at training and at parse time alike."""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 1000  # the intent of a long message is in its first paragraph

# Turkish capitals first: Python lower-cases "İ" to "i" plus a combining dot (two code points).
_TURKISH_CAPITALS = str.maketrans({"İ": "i", "I": "i", "ı": "i"})
# Customers leave out umlauts and Turkish letters; folding them makes "ü" and "u" one feature.
_LATIN_FOLD = str.maketrans({"ß": "ss", "ẞ": "ss", "æ": "ae", "ø": "o", "ł": "l", "đ": "d"})
_ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_ARABIC_LETTERS = str.maketrans({
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا",  # alef variants
    "ى": "ي",  # alef maqsura written for ya
    "ة": "ه",  # ta marbuta written as ha
    "ؤ": "و", "ئ": "ي",
    "ـ": "",  # tatweel
    "،": " ", "؟": " ", "؛": " ",
})
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_CYRILLIC = str.maketrans({"ё": "е"})
# Emoji that carry an answer become words the model was trained on; other symbols go.
EMOJI_WORDS = {
    "👍": " emoji_yes ", "👌": " emoji_yes ", "✅": " emoji_yes ", "🆗": " emoji_yes ",
    "👎": " emoji_no ", "❌": " emoji_no ", "🚫": " emoji_no ",
    "🙏": " emoji_thanks ", "❤": " emoji_thanks ", "😊": " emoji_thanks ",
    "👋": " emoji_wave ",
    "😡": " emoji_angry ", "🤬": " emoji_angry ", "😠": " emoji_angry ",
    "⭐": " emoji_star ", "🌟": " emoji_star ",
}
_EMOJI_PATTERN = re.compile("|".join(re.escape(e) for e in EMOJI_WORDS))
_REPEATS = re.compile(r"(\D)\1{2,}")
_SPACES = re.compile(r"\s+")


def _is_latin(char: str) -> bool:
    return "LATIN" in unicodedata.name(char, "")


def _fold_latin(text: str) -> str:
    out: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char) and out and _is_latin(out[-1]):
            continue  # drop accents on Latin letters only: Cyrillic "й" keeps its breve
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


def _keep(char: str) -> str:
    category = unicodedata.category(char)
    if category[0] in "LN" or char in " -'_":
        return char
    return " "  # punctuation, symbols, control characters, other emoji


def normalize(text: str) -> str:
    """Return the form of a customer message the model sees."""
    text = unicodedata.normalize("NFC", text[:MAX_CHARS])
    text = _EMOJI_PATTERN.sub(lambda m: EMOJI_WORDS[m.group(0)], text)
    text = text.translate(_TURKISH_CAPITALS).lower().translate(_LATIN_FOLD)
    text = _fold_latin(text)
    text = _ARABIC_DIACRITICS.sub("", text).translate(_ARABIC_LETTERS)
    text = text.translate(_DIGITS).translate(_CYRILLIC)
    text = "".join(_keep(char) for char in text)
    # A hyphen or apostrophe only counts inside a word ("по-немецки", "don't").
    text = re.sub(r"(?<!\w)[-']+|[-']+(?!\w)", " ", text)
    text = _REPEATS.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()


_ANNOTATION = re.compile(r"\[([^\]]+)\](\{[^}]*\}|\([^)]*\))")


def normalize_training_example(example: str) -> str:
    """Normalise a Rasa training line, keeping its entity annotations intact."""
    parts = []
    position = 0
    for match in _ANNOTATION.finditer(example):
        parts.append(normalize(example[position:match.start()]))
        parts.append(f"[{normalize(match.group(1))}]{match.group(2)}")
        position = match.end()
    parts.append(normalize(example[position:]))
    return " ".join(part for part in parts if part)
