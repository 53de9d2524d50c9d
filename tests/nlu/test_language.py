"""Language identification with the conversation's language as prior."""

from __future__ import annotations

import pytest

from nlu.language import LanguageIdentifier

IDENTIFY = LanguageIdentifier()


@pytest.mark.parametrize(("text", "expected"), [
    ("wann kommt der techniker heute", "de"),
    ("when is the technician coming today", "en"),
    ("teknisyen bugun ne zaman gelecek", "tr"),
    ("когда придет мастер", "ru"),
    ("متى يجي الفني", "ar"),
    ("да", "ru"),  # the script decides even a short word
])
def test_clear_messages_without_prior(text: str, expected: str) -> None:
    assert IDENTIFY.identify(text) == expected


@pytest.mark.parametrize("text", ["ok", "2", "👍", "jo", "sorry", "ok danke"])
def test_short_or_mixed_messages_keep_the_conversation_language(text: str) -> None:
    assert IDENTIFY.identify(text, current="de") == "de"
    assert IDENTIFY.identify(text, current="tr") == "tr"


def test_a_full_sentence_in_another_language_switches() -> None:
    assert IDENTIFY.identify("could you please write to me in english", current="de") == "en"
    assert IDENTIFY.identify("когда придет мастер", current="de") == "ru"


def test_telegram_hint_is_the_first_prior() -> None:
    assert IDENTIFY.identify("ok", hint="tr") == "tr"
    assert IDENTIFY.identify("ok", hint="xx") == "de"
