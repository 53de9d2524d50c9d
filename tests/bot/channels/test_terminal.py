"""The terminal channel shows each reply once: an offer's windows are its numbered buttons."""

from __future__ import annotations

from bot.channels.terminal import render
from dialogues.model import Button, Conversation, Reply
from tests.dialogues.factories import run, said

FRESH = Conversation(language="en")


def test_an_offer_is_printed_once_as_numbered_buttons() -> None:
    offer = run(FRESH, said("reschedule", "verschieben")).replies[0]
    shown = render(offer).split("\n")
    windows = [b.title.split(". ", 1)[1] for b in offer.flat_buttons
               if b.payload.startswith("s:")]
    assert shown[0] == offer.text.split("\n")[0]  # the question stays
    for number, window in enumerate(windows, 1):
        assert [line for line in shown if window in line] == [f"[{number}] {window}"]
    assert shown[-2:] == [f"[{len(windows) + 1}] None of these",
                          f"[{len(windows) + 2}] Earlier, if one frees up"]
    assert len(shown) == 1 + len(windows) + 2


def test_a_text_that_only_resembles_a_button_stays() -> None:
    reply = Reply("Hello\nHelp is near", ((Button("Help", "m:help"),),))
    assert render(reply) == "Hello\nHelp is near\n[1] Help"
