"""What the customer is told while a person holds the chat: queue, wait, hand-back."""

from __future__ import annotations

from datetime import datetime

from dialogues.model import Button, HandoffOutlook, Reply
from dialogues.texts import Texts

BACK = "h:back"  # the customer's own way back to the bot, honoured in every state
CALLBACK = "h:callback"


def back_button(t: Texts) -> tuple[Button, ...]:
    """Return the button that ends the handoff and brings the bot back."""
    return (Button(t("Back to the bot"), BACK),)


def _when(t: Texts, moment: datetime, now: datetime) -> str:
    return t("{day}, {time}", day=t.day_from(moment, now), time=t.time(moment))


def where_you_stand(t: Texts, outlook: HandoffOutlook, now: datetime) -> list[str]:
    """Say the place in the queue and what the configuration lets us promise about the wait."""
    lines = []
    if not outlook.open_now:
        lines.append(t("Our service team is not at work right now. They will be back: {when}.",
                       when=_when(t, outlook.back_at, now)) if outlook.back_at else
                     t("Our service team is not at work right now."))
    if outlook.position > 0:
        lines.append(t("You are number {position} in the queue.", position=outlook.position))
    if outlook.open_now and outlook.expected_wait is not None:
        minutes = max(1, round(outlook.expected_wait.total_seconds() / 60))
        lines.append(t.plural("Recently a colleague answered after about {count} minute.",
                              "Recently a colleague answered after about {count} minutes.",
                              minutes))
    if outlook.answer_by is not None:
        lines.append(t("If nobody has taken your request by {when}, I will tell you and you "
                       "can ask for a call back.", when=_when(t, outlook.answer_by, now)))
    return lines


def opened(t: Texts, outlook: HandoffOutlook, now: datetime, *, lead: str | None = None
           ) -> Reply:
    """The first reply of a handoff: passed on, where the customer stands, the way back."""
    lines = [lead] if lead else []
    lines.append(t("I have passed our conversation on to a colleague from the service team. "
                   "They will answer you here in this chat."))
    lines += where_you_stand(t, outlook, now)
    lines.append(t("Until then I will stay quiet and pass on everything you write. Messages "
                   "about your visit still reach you."))
    return Reply("\n".join(lines), (back_button(t),))


def still_waiting(t: Texts, outlook: HandoffOutlook, now: datetime) -> Reply:
    """A waiting customer wrote again: it was passed on, and where they stand."""
    lines = [t("I have passed your message on."), *where_you_stand(t, outlook, now)]
    return Reply("\n".join(lines), (back_button(t),))


def with_a_person(t: Texts) -> Reply:
    """A button of the bot's was tapped while a person holds the chat."""
    return Reply(t("A colleague from the service team is handling your conversation. To use "
                   "the bot's buttons again, tap “Back to the bot”."), (back_button(t),))


def back_to_bot(t: Texts, menu: tuple[tuple[Button, ...], ...]) -> Reply:
    """The customer ended the handoff themselves."""
    return Reply(t("All right: I am your assistant again, and I have told the service team. "
                   "What can I do for you?"), menu)


def callback_requested(t: Texts, *, phone_tail: str | None, outlook: HandoffOutlook,
                       now: datetime) -> Reply:
    """The customer asked to be called back instead of waiting in the chat."""
    if phone_tail:
        text = t("A colleague will call you back at the number ending in {digits}.",
                 digits=phone_tail)
    else:
        text = t("Please write your phone number here; a colleague will call you back.")
    lines = [text]
    if not outlook.open_now and outlook.back_at is not None:
        lines.append(t("Our service team will be back: {when}.",
                       when=_when(t, outlook.back_at, now)))
    return Reply("\n".join(lines), (back_button(t),))


def claimed(t: Texts, agent: str) -> Reply:
    """A person took the conversation."""
    return Reply(t("{agent} from the service team is now answering you here.", agent=agent))


def agent_message(t: Texts, agent: str, text: str) -> Reply:
    """A person's message, marked as theirs."""
    return Reply(t("{agent} (service team):", agent=agent) + "\n" + text)


def closed(t: Texts, agent: str, menu: tuple[tuple[Button, ...], ...]) -> Reply:
    """The person handed the conversation back."""
    return Reply(t("{agent} has closed the conversation. I am your assistant again: write to "
                   "me any time.", agent=agent), menu)


def timed_out(t: Texts) -> Reply:
    """Nobody claimed the handoff in time: say so, offer a call back or the bot."""
    return Reply(t("I am sorry: no colleague has been free to take your request yet. It stays "
                   "in the queue. You can ask for a call back, or continue with me."),
                 ((Button(t("Call me back"), CALLBACK),), back_button(t)))
