"""Normalisation: the same function at training and parse time."""

from __future__ import annotations

import pytest

from nlu.normalize import normalize, normalize_training_example


@pytest.mark.parametrize(("raw", "expected"), [
    ("İSTANBUL'DA Işık", "istanbul'da isik"),  # dotted and dotless I before lower-casing
    ("Wann kommt der TECHNIKER???", "wann kommt der techniker"),
    ("Straße GRÜẞE öffnen", "strasse grusse offnen"),
    ("أَلْفَنِّيُّ إلى المـــوعد ؟", "الفني الي الموعد"),  # diacritics, tatweel, alef, ya
    ("متى موعدي ٣", "متي موعدي 3"),
    ("Ёлка и йод", "елка и йод"),  # ё folds, й keeps its breve
    ("soooooo gut 👍", "soo gut emoji_yes"),
    ("по-немецки - пожалуйста", "по-немецки пожалуйста"),
    ("\x00\x07hi\u202e\u200f", "hi"),
    ("🤡🤡🤡", ""),
])
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_training_examples_keep_their_annotations() -> None:
    line = 'Die [ZWEITE]{"entity": "ordinal", "value": "2"} bitte, Nr. [48213377](order_number)!'
    assert normalize_training_example(line) == (
        'die [zweite]{"entity": "ordinal", "value": "2"} bitte nr [48213377](order_number)')


def test_very_long_messages_are_cut() -> None:
    assert len(normalize("wort " * 2000)) <= 1000
