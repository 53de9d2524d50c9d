"""What the customer is told while their chat is linked to an order, and at the chat's edges."""

from __future__ import annotations

from dialogues.model import Button, Reply
from dialogues.texts import Texts

EXAMPLE = "12345678 10115"


def linked(t: Texts, *, name: str, number: str) -> Reply:
    """The chat is now bound to the order."""
    first = name.split()[0] if name else ""
    return Reply(t("Hello {name}! This chat is now linked to your order {number}. I will keep "
                   "you posted about your technician visit.", name=first, number=number),
                 ((Button(t("When is the technician coming?"), "m:status"),),
                  (Button(t("Help"), "m:help"),)))


def link_refused(t: Texts, *, reason: str) -> Reply:
    """The deep-link token is used, expired or unknown: say which and what to do."""
    text = {
        "used": t("This link has already been used."),
        "expired": t("This link has expired."),
    }.get(reason, t("This link is not valid."))
    return Reply(text + "\n" + ask_for_order(t).text)


def ask_for_order(t: Texts) -> Reply:
    """The chat knows no order yet: ask for the number and postal code."""
    return Reply(t("To tell you about your visit I need your order. Please send your order "
                   "number and postal code, for example “{example}”, or open the link from "
                   "your appointment confirmation.", example=EXAMPLE))


def identification_failed(t: Texts, *, tries_left: int) -> Reply:
    """Number and postal code did not match (never saying which, or whether the order exists)."""
    return Reply(t.plural("I could not find an order with this number and postal code. Please "
                          "check both. {count} try left.",
                          "I could not find an order with this number and postal code. Please "
                          "check both. {count} tries left.", tries_left))


def locked_out(t: Texts) -> Reply:
    """Too many failed tries in the last hour."""
    return Reply(t("Too many attempts. Please try again in an hour, or open the link from your "
                   "appointment confirmation."))


def choose_order(t: Texts, numbers: list[str]) -> Reply:
    """The customer has several orders: which one is this chat about?"""
    return Reply(t("You have several orders. Which one is this about?"),
                 tuple((Button(number, f"o:{number}"),) for number in numbers))


def confirm_delete(t: Texts) -> Reply:
    """Ask before forgetting the chat."""
    return Reply(t("Shall I forget this chat? The link to your order and our conversation "
                   "will be deleted. Your order itself stays as it is."),
                 ((Button(t("Yes, delete"), "d:yes"), Button(t("No"), "d:no")),))


def deleted(t: Texts) -> Reply:
    """The chat has been forgotten."""
    return Reply(t("Done: I have deleted the link to your order and our conversation. Send "
                   "/start to begin again."))


def not_deleted(t: Texts) -> Reply:
    """The customer changed their mind about deleting."""
    return Reply(t("All right, nothing has been deleted."))


def only_text(t: Texts) -> Reply:
    """A photo, sticker or voice message: the bot reads text only."""
    return Reply(t("I can only read text messages. Please write to me, or use the buttons."),
                 ((Button(t("When is the technician coming?"), "m:status"),),
                  (Button(t("Help"), "m:help"),)))


def private_only(t: Texts) -> Reply:
    """The bot was added to a group."""
    return Reply(t("I only work in a private chat. Please write to me directly."))


def something_went_wrong(t: Texts) -> Reply:
    """An unexpected error: apologise, nothing was lost."""
    return Reply(t("Sorry, something went wrong on my side. Please try again in a moment."))


def commands_help(t: Texts) -> list[tuple[str, str]]:
    """Describe the chat's slash commands for Telegram's command menu."""
    return [("start", t("Start, or turn messages on again")),
            ("stop", t("Turn messages off")),
            ("language", t("Change the language")),
            ("delete", t("Delete this chat's data")),
            ("help", t("What I can do"))]


def messages_on(t: Texts) -> Reply:
    """Pushes are on (again)."""
    return Reply(t("Messages are on again: I will tell you when your technician is on the way or "
                   "anything changes."))


def messages_off(t: Texts) -> Reply:
    """Pushes are off, except a cancellation."""
    return Reply(t("I will not send you any more messages, except if your visit is cancelled. "
                   "To turn them on again, send /start or tap the button."),
                 ((Button(t("Turn messages on again"), "m:notify_on"),),))


def offer_expired(t: Texts) -> Reply:
    """A button from an old message."""
    return Reply(t("This offer has expired. Here is what I can do now:"),
                 ((Button(t("When is the technician coming?"), "m:status"),),
                  (Button(t("Help"), "m:help"),)))
