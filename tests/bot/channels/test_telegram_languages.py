"""The per-process memory of each chat's language, the NLU's prior."""

from __future__ import annotations

from bot.channels.telegram import RecentLanguages


def test_it_remembers_the_last_language_and_forgets_the_least_recent_chat() -> None:
    languages = RecentLanguages(size=2)
    languages.remember(1, "de")
    languages.remember(2, "ar")
    languages.remember(1, "tr")  # chat 1 is now the most recent
    languages.remember(3, "ru")
    assert (languages.get(1), languages.get(2), languages.get(3)) == ("tr", None, "ru")


def test_a_deleted_chat_is_forgotten() -> None:
    languages = RecentLanguages()
    languages.remember(1, "en")
    languages.forget(1)
    languages.forget(99)  # unknown: nothing to do
    assert languages.get(1) is None
