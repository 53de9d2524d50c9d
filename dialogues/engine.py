"""The dialogue engine: (conversation, input, order, now) -> (replies, conversation, commands)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.numbers import format_currency

from dialogues import handoff as handoff_texts
from dialogues.model import (
    BookSlot,
    Button,
    ButtonPress,
    CancelVisit,
    Command,
    CommandFailed,
    Conversation,
    Incoming,
    JoinWaitlist,
    LeaveWaitlist,
    OpenHandoff,
    OrderView,
    PassWaitlistOffer,
    Prediction,
    Reply,
    Rules,
    SaveNote,
    SaveRating,
    SetLanguage,
    SetNotifications,
    SlotView,
    State,
    Step,
    TakeWaitlistOffer,
    TextMessage,
)
from dialogues.texts import Texts
from dialogues.when import Wish, parse_pick, parse_wish
from nlu.types import NOT_UNDERSTOOD

LANGUAGE_NAMES = {"de": "Deutsch", "en": "English", "tr": "Türkçe", "ru": "Русский",
                  "ar": "العربية"}
MIN_NOTE_WORDS = 4  # "ich will eine notiz hinterlassen" is a wish to leave one, not the note
_BARE_NUMBER = re.compile(r"^\s*([0-9٠-٩]{1,2})\s*[.)]?\s*$")
_STARS = re.compile(r"(?<!\d)([1-5])(?!\d)")
TextsFor = Callable[[str], Texts]


@dataclass(frozen=True)
class Context:
    """Everything one step may read."""

    conversation: Conversation
    incoming: Incoming
    order: OrderView
    now: datetime
    rules: Rules
    t: Texts
    texts_for: TextsFor
    kind: str
    argument: str = ""  # the payload's or number's value, when the kind has one

    @property
    def text(self) -> str:
        """Return the customer's text, or '' for a button."""
        return self.incoming.text if isinstance(self.incoming, TextMessage) else ""

    @property
    def zone(self) -> ZoneInfo:
        """Return the visit's time zone."""
        return ZoneInfo(self.order.timezone)

    def step(self, *replies: Reply, state: State = State.IDLE,
             commands: tuple[Command, ...] = (), **data: object) -> Step:
        """Finish the step in a state, keeping the conversation's other data."""
        return Step(replies, self.conversation.with_state(state, **data), commands)

    def menu(self) -> tuple[tuple[Button, ...], ...]:
        """Return the buttons of the main actions."""
        return menu_buttons(self.t)


def menu_buttons(t: Texts) -> tuple[tuple[Button, ...], ...]:
    """Return the buttons of the main actions, in the customer's language."""
    return (
        (Button(t("When is the technician coming?"), "m:status"),),
        (Button(t("Move the visit"), "m:move"), Button(t("Cancel the visit"), "m:cancel")),
        (Button(t("Talk to a person"), "m:human"), Button(t("Help"), "m:help")),
    )


def kind_of(incoming: Incoming) -> tuple[str, str]:
    """Name what the customer did: an intent, a number, or a kind of button."""
    if isinstance(incoming, CommandFailed):
        return "failed", incoming.reason
    if isinstance(incoming, ButtonPress):
        prefix, _, rest = incoming.payload.partition(":")
        return BUTTON_KINDS.get(prefix, "forged"), rest
    number = _BARE_NUMBER.match(incoming.text)
    if number:
        return "number", number.group(1).translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789"))
    return incoming.parsed.intent, ""


BUTTON_KINDS = {"s": "slot_button", "y": "yes", "n": "no", "r": "rating", "l": "language_button",
                "m": "menu", "h": "handoff_button", "w": "waitlist_button"}
MENU_KINDS = {"status": "ask_status", "move": "reschedule", "cancel": "cancel",
              "human": "human_handoff", "help": "help", "keep": "keep", "later": "deny",
              "notify_on": "notifications_on", "language": "change_language"}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Drop control characters (NUL above all: PostgreSQL refuses it); keep text and RTL marks."""
    return _CONTROL.sub("", text)


def step(
    conversation: Conversation,
    incoming: Incoming,
    order: OrderView,
    now: datetime,
    *,
    rules: Rules,
    texts_for: TextsFor,
) -> Step:
    """Decide the replies, the next state and the commands for one customer input."""
    if conversation.last_activity and now - conversation.last_activity > rules.idle_reset:
        conversation = Conversation(language=conversation.language)  # a stale dialogue restarts
    if isinstance(incoming, TextMessage):
        incoming = replace(incoming, text=clean(incoming.text))
    language = conversation.language
    if isinstance(incoming, TextMessage) and incoming.parsed.language != language:
        language = incoming.parsed.language
    kind, argument = kind_of(incoming)
    if kind == "menu":
        kind = MENU_KINDS.get(argument, "forged")
    before = conversation.language
    conversation = replace(conversation, language=language)
    if isinstance(incoming, TextMessage):
        conversation = conversation.remember("customer", incoming.text, now,
                                             incoming.parsed.intent)
    if kind != NOT_UNDERSTOOD and conversation.data.get("misses"):
        conversation = conversation.with_state(conversation.state, misses=0)
    ctx = Context(conversation, incoming, order, now, rules, texts_for(language), texts_for,
                  kind, argument)
    handler = TRANSITIONS.get(conversation.state, {}).get(kind) or INTENTS.get(kind, not_understood)
    result = handler(ctx)
    new = replace(result.conversation, last_activity=now)
    for reply in result.replies:
        new = new.remember("bot", reply.text, now)
    commands = result.commands
    # The chat's language (used for pushes) follows the conversation's.
    if new.language != before and not any(isinstance(c, SetLanguage) for c in commands):
        commands = (*commands, SetLanguage(new.language))
    return Step(result.replies, new, commands)


# Status ---------------------------------------------------------------------------------------


def status(ctx: Context) -> Step:
    """Say where the visit stands, as precisely as the route and the ETA allow."""
    t, order = ctx.t, ctx.order
    lines = []
    name = order.technician_first_name
    prediction = order.prediction
    if order.status == "completed":
        lines.append(t("Your visit was completed on {day}.", day=t.day(order.finished_at
                                                                      or ctx.now)))
    elif order.status == "cancelled":
        lines.append(t("Your visit has been cancelled."))
        if order.status_reason:
            lines.append(t("Reason: {reason}", reason=order.status_reason))
        lines.append(t("Tap “Move the visit” to book a new appointment."))
    elif order.status == "no_show" or missed(order, ctx.now):
        lines.append(t("We are very sorry: the technician did not come in your window "
                       "{window}.", window=t.window(order.window_start, order.window_end))
                     if order.window_start and order.window_end else
                     t("We are very sorry: the technician did not come."))
        lines.append(t("You can book a new appointment, and you may be entitled to "
                       "compensation (ask me about it)."))
    elif order.status == "arrived":
        lines.append(t("Your technician {name} has arrived.", name=name or "")
                     if name else t("Your technician has arrived."))
    elif order.window_start is None or order.window_end is None:
        lines.append(t("Your visit is not scheduled yet. Tap “Move the visit” to choose an "
                       "appointment."))
    else:
        lines.append(t("Your visit is booked for {window}.",
                       window=t.window(order.window_start, order.window_end, ctx.now)))
        if order.status == "en_route":
            lines.append(t("Your technician {name} is on the way.", name=name)
                         if name else t("Your technician is on the way."))
        elif name:
            lines.append(t("Your technician is {name}.", name=name))
        if prediction is not None:
            lines.append(_expected(t, prediction, ctx.now))
    return ctx.step(Reply("\n".join(lines), ctx.menu()))


def _expected(t: Texts, prediction: Prediction, now: datetime) -> str:
    """Say when the technician is expected, with the day's words and the route's place."""
    times = t.times(prediction.window_start, prediction.window_end)
    days = (t.local(prediction.eta).date() - t.local(now).date()).days
    placed = prediction.stop is not None and prediction.stops is not None
    if days == 0:
        return (t("You are stop {stop} of {stops} today; expected {times}.",
                  stop=prediction.stop, stops=prediction.stops, times=times)
                if placed else t("Expected arrival: {times}.", times=times))
    if days == 1:
        return (t("Tomorrow you are stop {stop} of {stops}; expected {times}.",
                  stop=prediction.stop, stops=prediction.stops, times=times)
                if placed else t("Expected arrival tomorrow: {times}.", times=times))
    return t("Expected arrival: {times}.",
             times=t.window(prediction.window_start, prediction.window_end, now))


def missed(order: OrderView, now: datetime) -> bool:
    """Say whether the booked window passed with no technician at the door."""
    return (order.status in ("scheduled", "en_route") and order.window_end is not None
            and order.window_end < now and order.arrived_at is None)


# Rescheduling ---------------------------------------------------------------------------------


def refusal_to_move(ctx: Context) -> str | None:
    """Say why the customer cannot move the visit themselves, or None if they can."""
    t, order = ctx.t, ctx.order
    if order.status in ("en_route", "arrived"):
        return t("Your technician is already on the way, so the visit can no longer be "
                 "moved here. A colleague can help you.")
    if order.status == "completed":
        return t("This visit is already completed.")
    if order.moves >= ctx.rules.max_moves:
        return t.plural("You have already moved this visit {count} time, which is the most "
                        "I can do here. A colleague can help you.",
                        "You have already moved this visit {count} times, which is the most "
                        "I can do here. A colleague can help you.", order.moves)
    if (order.status == "scheduled" and order.window_start is not None
            and order.window_start - ctx.now < ctx.rules.reschedule_cutoff):
        hours = int(ctx.rules.reschedule_cutoff.total_seconds() // 3600)
        return t.plural("Your visit starts in less than {count} hour, too soon to move it "
                        "here. A colleague can help you.",
                        "Your visit starts in less than {count} hours, too soon to move it "
                        "here. A colleague can help you.", hours)
    return None


def bookable(ctx: Context) -> list[SlotView]:
    """Return the free windows the customer may book now, soonest first."""
    earliest = ctx.now + ctx.rules.reschedule_cutoff
    return [s for s in ctx.order.free_slots
            if s.start > earliest and s.id != ctx.order.slot_id]


def wants_earlier(ctx: Context) -> bool:
    """Say whether the customer asked for an earlier window than the booked one."""
    # `timing` has one value; a word form the synonyms never saw comes back as its own text.
    return (isinstance(ctx.incoming, TextMessage)
            and ctx.incoming.parsed.entity("timing") is not None)


def reschedule(ctx: Context) -> Step:
    """Offer free windows, or jump to the day the customer named."""
    refusal = refusal_to_move(ctx)
    if refusal:
        return ctx.step(Reply(refusal, ((Button(ctx.t("Talk to a person"), "m:human"),),)))
    if wants_earlier(ctx) and ctx.order.window_start is not None:
        return earlier(ctx)
    slots = bookable(ctx)
    wish = parse_wish(ctx.text, language=ctx.t.language, now=ctx.now, zone=ctx.zone)
    if not wish.empty:
        matching = [s for s in slots if wish.admits(s, ctx.zone)]
        if len(matching) == 1:
            return confirm_slot(ctx, matching[0])
        if matching:
            return offer(ctx, matching, ctx.t("These windows fit your wish:"))
        if slots:
            return offer(ctx, slots, ctx.t("Sorry, there is no free window at that time. "
                                           "The next free windows are:"))
    if not slots:
        person = (Button(ctx.t("Talk to a person"), "m:human"),)
        return ctx.step(Reply(ctx.t("Sorry, there is no free window in the next {days} days. "
                                    "A colleague can look for a solution with you.",
                                    days=14),
                              (join_button(ctx), person)
                              if ctx.order.window_start and not ctx.order.on_waitlist
                              else (person,)))
    return offer(ctx, slots, ctx.t("Which window suits you? Tap one or write its number, or "
                                   "a day and time like “Thursday afternoon”."))


def offer(ctx: Context, slots: list[SlotView], intro: str) -> Step:
    """Show up to N windows as a numbered list and as buttons, and remember the offer."""
    shown = slots[: ctx.rules.offer_slots]
    offer_id = int(ctx.conversation.data.get("offer_seq", 0)) + 1
    lines = [intro] + [f"{i}. {ctx.t.window(s.start, s.end)}" for i, s in enumerate(shown, 1)]
    buttons: tuple[tuple[Button, ...], ...] = tuple(
        (Button(f"{i}. {ctx.t.window(s.start, s.end)}", f"s:{offer_id}:{i}"),)
        for i, s in enumerate(shown, 1))
    buttons += ((Button(ctx.t("None of these"), "m:later"),),)
    if ctx.order.window_start is not None and not ctx.order.on_waitlist:
        buttons += (join_button(ctx),)
    stored = {"id": offer_id, "at": ctx.now.isoformat(),
              "slots": [[s.id, s.start.isoformat(), s.end.isoformat()] for s in shown],
              "after": shown[-1].start.isoformat()}
    return ctx.step(Reply("\n".join(lines), buttons), state=State.CHOOSING_SLOT,
                    offer=stored, offer_seq=offer_id)


def _offered(ctx: Context) -> list[SlotView] | None:
    """Return the slots of the open offer, or None if there is none or it is too old."""
    stored = ctx.conversation.data.get("offer")
    if not stored or ctx.now - datetime.fromisoformat(stored["at"]) > ctx.rules.offer_validity:
        return None
    return [SlotView(i, datetime.fromisoformat(a), datetime.fromisoformat(b))
            for i, a, b in stored["slots"]]


def expired(ctx: Context) -> Step:
    """Tell the customer the button belongs to an offer that no longer holds."""
    return ctx.step(Reply(ctx.t("This offer has expired. Here is what I can do now:"),
                          ctx.menu()))


def pick_by_button(ctx: Context) -> Step:
    """Take the window the customer tapped, if the button belongs to the open offer."""
    offer_id, _, index = ctx.argument.partition(":")
    stored = ctx.conversation.data.get("offer") or {}
    slots = _offered(ctx)
    if slots is None or str(stored.get("id")) != offer_id or not index.isdigit() or not (
            1 <= int(index) <= len(slots)):
        return expired(ctx)
    return confirm_slot(ctx, slots[int(index) - 1])


def pick_by_text(ctx: Context) -> Step:
    """Take the window the customer named by number, ordinal or time."""
    slots = _offered(ctx)
    if slots is None:
        return reschedule(ctx) if ctx.text else expired(ctx)
    entity = ctx.incoming.parsed.entity("ordinal") if isinstance(ctx.incoming,
                                                                 TextMessage) else None
    index = parse_pick(ctx.argument or ctx.text, language=ctx.t.language, entity=entity,
                       count=len(slots))
    if index is not None:
        return confirm_slot(ctx, slots[index])
    return reschedule(ctx)


def later_slots(ctx: Context) -> Step:
    """Show the windows after the ones already offered."""
    stored = ctx.conversation.data.get("offer")
    after = datetime.fromisoformat(stored["after"]) if stored else ctx.now
    slots = [s for s in bookable(ctx) if s.start > after]
    if not slots:
        return ctx.step(Reply(ctx.t("There are no later free windows in the next {days} days. "
                                    "A colleague can look for a solution with you.", days=14),
                              ((Button(ctx.t("Talk to a person"), "m:human"),),)))
    return offer(ctx, slots, ctx.t("Later free windows:"))


def confirm_slot(ctx: Context, slot: SlotView) -> Step:
    """Ask the customer to confirm the window before booking it."""
    token = int(ctx.conversation.data.get("confirm_seq", 0)) + 1
    return ctx.step(
        Reply(ctx.t("Shall I move your visit to {window}?",
                    window=ctx.t.window(slot.start, slot.end)),
              ((Button(ctx.t("Yes"), f"y:{token}"), Button(ctx.t("No"), f"n:{token}")),)),
        state=State.CONFIRMING_SLOT, confirm_seq=token,
        chosen=[slot.id, slot.start.isoformat(), slot.end.isoformat()],
    )


def _confirmation_matches(ctx: Context) -> bool:
    if isinstance(ctx.incoming, ButtonPress):
        return ctx.argument == str(ctx.conversation.data.get("confirm_seq"))
    return True


def book(ctx: Context) -> Step:
    """Book the confirmed window (the caller runs the command; a race is answered later)."""
    if not _confirmation_matches(ctx):
        return expired(ctx)
    refusal = refusal_to_move(ctx)
    if refusal:
        return ctx.step(Reply(refusal, ((Button(ctx.t("Talk to a person"), "m:human"),),)))
    slot_id, start, end = ctx.conversation.data["chosen"]
    window = ctx.t.window(datetime.fromisoformat(start), datetime.fromisoformat(end))
    return ctx.step(Reply(ctx.t("Done: your visit is now booked for {window}. I will remind you "
                                "the evening before.", window=window),
                          (join_button(ctx), *ctx.menu())),
                    commands=(BookSlot(slot_id),), offer=None, chosen=None)


# The waitlist for an earlier window -----------------------------------------------------------


def join_button(ctx: Context) -> tuple[Button, ...]:
    """Return the button that asks for an earlier window when one frees up."""
    return (Button(ctx.t("Earlier, if one frees up"), "w:join"),)


def earlier(ctx: Context) -> Step:
    """Offer the free windows before the booked one, or wait for one to free up."""
    assert ctx.order.window_start is not None
    wish = parse_wish(ctx.text, language=ctx.t.language, now=ctx.now, zone=ctx.zone)
    before = ctx.order.window_start
    if wish.day is not None:  # "earlier, before Friday": the named day is the last one
        last = datetime.combine(wish.day + timedelta(days=1), datetime.min.time(), ctx.zone)
        before = min(before, last)
    part = Wish(part=wish.part) if wish.part else None
    slots = [s for s in bookable(ctx)
             if s.start < before and (part is None or part.admits(s, ctx.zone))]
    if slots:
        return offer(ctx, slots, ctx.t("These earlier windows are free now:"))
    return join_waitlist(ctx, before, wish.part, ctx.t(
        "No earlier window is free right now."))


def join_waitlist(ctx: Context, before: datetime, part: str | None, lead: str | None = None
                  ) -> Step:
    """Put the visit on the waitlist and say what happens when a window frees up."""
    minutes = int(ctx.rules.waitlist_hold.total_seconds() // 60)
    lines = [lead] if lead else []
    lines.append(ctx.t.plural(
        "I have put you on the waitlist for an earlier window. When one frees up, I will "
        "send it to you here and hold it for you for {count} minute.",
        "I have put you on the waitlist for an earlier window. When one frees up, I will "
        "send it to you here and hold it for you for {count} minutes.", minutes))
    if part is not None:
        lines.append(ctx.t("Only windows in the {part} count.", part=part_name(ctx.t, part)))
    return ctx.step(Reply("\n".join(lines), ((Button(ctx.t("Leave the waitlist"), "w:leave"),),
                                              *ctx.menu())),
                    commands=(JoinWaitlist(before, part),), offer=None)


def part_name(t: Texts, part: str) -> str:
    """Say a part of the day in the customer's language."""
    return {"morning": t("morning"), "midday": t("middle of the day"),
            "afternoon": t("afternoon"), "evening": t("evening")}[part]


def waitlist_button(ctx: Context) -> Step:
    """Join or leave the waitlist, or take or pass a window held for the customer."""
    action, _, offer_id = ctx.argument.partition(":")
    if action == "join":
        refusal = refusal_to_move(ctx)
        if refusal or ctx.order.window_start is None:
            return ctx.step(Reply(refusal or ctx.t(
                "Your visit is not scheduled yet. Tap “Move the visit” to choose an "
                "appointment."), ((Button(ctx.t("Talk to a person"), "m:human"),),)))
        return join_waitlist(ctx, ctx.order.window_start, None)
    if action == "leave":
        return ctx.step(Reply(ctx.t("You are no longer on the waitlist. Your visit stays as "
                                    "booked."), ctx.menu()), commands=(LeaveWaitlist(),))
    held = ctx.conversation.data.get("waitlist_offer") or {}
    if not offer_id.isdigit() or str(held.get("id")) != offer_id or action not in (
            "take", "pass"):
        return expired(ctx)
    if action == "pass":
        return ctx.step(Reply(ctx.t("All right, your visit stays as booked. You stay on the "
                                    "waitlist."), ctx.menu()),
                        commands=(PassWaitlistOffer(int(offer_id)),), waitlist_offer=None)
    window = ctx.t.window(datetime.fromisoformat(held["start"]),
                          datetime.fromisoformat(held["end"]))
    return ctx.step(Reply(ctx.t("Done: your visit is now booked for {window}. I will remind you "
                                "the evening before.", window=window), ctx.menu()),
                    commands=(TakeWaitlistOffer(int(offer_id)),), waitlist_offer=None)


def decline_slot(ctx: Context) -> Step:
    """The customer does not want the chosen window: show the offer again."""
    if not _confirmation_matches(ctx):
        return expired(ctx)
    slots = _offered(ctx)
    if slots:
        return offer(ctx, bookable(ctx) or slots, ctx.t("All right. Which window suits you "
                                                        "instead?"))
    return ctx.step(Reply(ctx.t("All right, your visit stays as it is."), ctx.menu()))


def command_failed(ctx: Context) -> Step:
    """Answer truthfully when a booking or another command did not go through."""
    if ctx.argument == "hold_gone":
        return ctx.step(Reply(ctx.t("Sorry, this window is no longer held for you. Your visit "
                                    "has not been moved, and you stay on the waitlist."),
                              ctx.menu()))
    if ctx.argument == "slot_taken":
        slots = bookable(ctx)
        intro = ctx.t("Sorry, someone else has just booked that window. Your visit has not "
                      "been moved.")
        if slots:
            return offer(ctx, slots, intro + "\n" + ctx.t("These windows are still free:"))
        return ctx.step(Reply(intro, ctx.menu()))
    return ctx.step(Reply(ctx.t("Sorry, that did not work. Nothing has been changed. Please "
                                "try again, or talk to a person."), ctx.menu()))


# Cancelling -----------------------------------------------------------------------------------


def ask_cancel(ctx: Context) -> Step:
    """Ask before cancelling the visit."""
    t, order = ctx.t, ctx.order
    if order.status == "cancelled":
        return ctx.step(Reply(t("Your visit is already cancelled."), ctx.menu()))
    if order.status == "completed":
        return ctx.step(Reply(t("This visit is already completed."), ctx.menu()))
    if order.status in ("en_route", "arrived"):
        return ctx.step(Reply(t("Your technician is already on the way, so the visit can no "
                                "longer be cancelled here. A colleague can help you."),
                              ((Button(t("Talk to a person"), "m:human"),),)))
    token = int(ctx.conversation.data.get("confirm_seq", 0)) + 1
    when = (t.window(order.window_start, order.window_end)
            if order.window_start and order.window_end else "")
    question = (t("Do you really want to cancel your visit on {window}?", window=when)
                if when else t("Do you really want to cancel your visit?"))
    return ctx.step(Reply(question, ((Button(t("Yes, cancel"), f"y:{token}"),
                                      Button(t("No, keep it"), f"n:{token}")),)),
                    state=State.CONFIRMING_CANCEL, confirm_seq=token)


def cancel_visit(ctx: Context) -> Step:
    """Cancel the visit and say what happens next."""
    if not _confirmation_matches(ctx):
        return expired(ctx)
    return ctx.step(Reply(ctx.t("Your visit is cancelled and the window is free for others. "
                                "If you need a technician later, just write to me and I will "
                                "offer you new appointments."), ctx.menu()),
                    commands=(CancelVisit("customer request in chat"),))


def keep_visit(ctx: Context) -> Step:
    """Leave the visit as it is."""
    if not _confirmation_matches(ctx):
        return expired(ctx)
    return keep(ctx)


def keep(ctx: Context) -> Step:
    """Confirm that the visit stays where it is."""
    order = ctx.order
    if order.window_start and order.window_end and order.status not in ("cancelled",
                                                                         "completed"):
        return ctx.step(Reply(ctx.t("Good, your visit stays on {window}.",
                                    window=ctx.t.window(order.window_start, order.window_end)),
                              ctx.menu()), delay_told_at=None)
    return ctx.step(Reply(ctx.t("All right, nothing has been changed."), ctx.menu()))


# Notes, technician, preparation ---------------------------------------------------------------


def leave_note(ctx: Context) -> Step:
    """Keep the note for the technician, or ask for it when the message only announces one."""
    if len(ctx.text.split()) < MIN_NOTE_WORDS:
        return ctx.step(Reply(ctx.t("What should I tell the technician? For example where to "
                                    "ring, the floor, or where to park.")),
                        state=State.AWAITING_NOTE)
    return save_note(ctx)


def save_note(ctx: Context) -> Step:
    """Store the message as a note and repeat it back."""
    if ctx.kind in ("deny", "cancel") or not ctx.text:
        return ctx.step(Reply(ctx.t("All right, no note."), ctx.menu()))
    note = ctx.text.strip()[:1000]
    return ctx.step(Reply(ctx.t("I will pass this on to the technician: “{note}”", note=note),
                          ctx.menu()), commands=(SaveNote(note),))


def verify_technician(ctx: Context) -> Step:
    """Tell how to recognise the real technician: name and code word."""
    t, order = ctx.t, ctx.order
    lines = []
    if order.technician_name and order.code_word:
        lines.append(t("Your technician is {name}. Ask for the code word of your visit: "
                       "“{code}”.", name=order.technician_name, code=order.code_word))
    elif order.technician_name:
        lines.append(t("Your technician is {name}.", name=order.technician_name))
    else:
        lines.append(t("No technician has been assigned to your visit yet."))
    lines.append(t("Our technicians carry a company ID and never ask for cash. If the name or "
                   "the code word does not match, do not let the person in and talk to us."))
    return ctx.step(Reply("\n".join(lines), ((Button(t("Talk to a person"), "m:human"),),)))


def preparation(ctx: Context) -> Step:
    """Say what to prepare and the safety and hygiene notes of the visit."""
    return ctx.step(Reply(ctx.t(
        "How to prepare for the visit:\n"
        "• An adult (18 or older) must be at home for the whole window.\n"
        "• Clear the way to the router, the telephone socket and, for fibre, the building's "
        "connection point (often in the basement); have the keys ready.\n"
        "• Keep a free power socket near the router.\n"
        "• Have your order number at hand.\n"
        "Safety and hygiene: please air the room, keep pets away, and tell us if someone in "
        "the household is ill: we will then move the visit free of charge."), ctx.menu()))


# People, money, feedback ----------------------------------------------------------------------


MISSES_BEFORE_A_PERSON = 3  # not understood this often in a row: a person takes over
RECENT_TROUBLE = timedelta(hours=2)  # a delay or a poor rating this recent explains a handoff


def _recent(ctx: Context, key: str) -> bool:
    at = ctx.conversation.data.get(key)
    return isinstance(at, str) and ctx.now - datetime.fromisoformat(at) <= RECENT_TROUBLE


def handoff(ctx: Context, reason: str | None = None, lead: str | None = None) -> Step:
    """Hand the chat to a person: say so, where the customer stands, and the way back."""
    if reason is None:
        reason = ("delay_rejected" if _recent(ctx, "delay_told_at") else
                  "complaint" if _recent(ctx, "poor_rating_at") else "customer_asked")
    outlook = ctx.order.load_handoff_outlook(ctx.t.language)
    return ctx.step(handoff_texts.opened(ctx.t, outlook, ctx.now, lead=lead),
                    commands=(OpenHandoff(reason),), misses=0)


def compensation(ctx: Context) -> Step:
    """Explain the statutory compensation, and open a claim when the visit was missed."""
    t, order = ctx.t, ctx.order
    fee = order.monthly_fee_cents
    amount = max(1000, fee * 20 // 100) if fee else 1000
    lines = [t("If a technician misses an agreed appointment, the law (§ 58 (4) TKG, since "
               "December 2021) entitles you to compensation for each missed appointment: "
               "€10 or 20 percent of your monthly fee, whichever is higher.")]
    if order.status == "no_show" or missed(order, ctx.now):
        lines.append(t("Your appointment was missed, so I have opened a claim for you "
                       "({amount}). A colleague checks it, and it is credited to your next "
                       "bill.", amount=_euros(amount, t.language)))
        return handoff(ctx, "compensation", lead="\n".join(lines))
    lines.append(t("Your current appointment has not been missed, so there is nothing to claim "
                   "for it at the moment."))
    return ctx.step(Reply("\n".join(lines), ctx.menu()))


def _euros(cents: int, language: str) -> str:
    return format_currency(cents / 100, "EUR", locale=language)


def feedback(ctx: Context) -> Step:
    """Store the customer's rating and words about the visit."""
    stars = _stars(ctx)
    text = ctx.text.strip()[:2000] or None
    if stars is None and ctx.kind in ("number", "rating"):
        return ctx.step(Reply(ctx.t("Please rate the visit from 1 to 5 stars."),
                              rating_buttons()), state=State.AWAITING_RATING)
    thanks = (ctx.t.plural("Thank you for your rating of {count} star!",
                           "Thank you for your rating of {count} stars!", stars)
              if stars else ctx.t("Thank you for your feedback!"))
    saved = (SaveRating(stars, text if ctx.kind not in ("number", "rating") else None),)
    if stars is not None and stars <= 2:  # a poor visit: a person should hear about it
        return ctx.step(Reply(thanks + "\n" + ctx.t(
            "I am sorry the visit did not go well. If you like, a colleague from the service "
            "team looks into it with you."), ((Button(ctx.t("Talk to a person"), "m:human"),),)),
            commands=saved, poor_rating_at=ctx.now.isoformat())
    return ctx.step(Reply(thanks), commands=saved)


def _stars(ctx: Context) -> int | None:
    if ctx.kind in ("number", "rating"):
        return int(ctx.argument) if ctx.argument in ("1", "2", "3", "4", "5") else None
    stars = ctx.text.count("⭐") + ctx.text.count("★")
    if 1 <= stars <= 5:
        return stars
    match = _STARS.search(ctx.text)
    return int(match.group(1)) if match else None


def rating_buttons() -> tuple[tuple[Button, ...], ...]:
    """Return the 1 to 5 star buttons of a rating."""
    return (tuple(Button("⭐" * n, f"r:{n}") for n in range(1, 6)),)


def number_outside_offer(ctx: Context) -> Step:
    """A bare number while nothing was offered: a rating after the visit, else unclear."""
    if ctx.order.status == "completed":
        return feedback(ctx)
    return not_understood(ctx)


# Language and notifications -------------------------------------------------------------------


def change_language(ctx: Context) -> Step:
    """Switch to the language the customer named, or offer the five."""
    target = (ctx.incoming.parsed.entity("language")
              if isinstance(ctx.incoming, TextMessage) else None)
    if target in LANGUAGE_NAMES and target != ctx.conversation.language:
        return _switch_language(ctx, target)
    return ctx.step(Reply(ctx.t("Which language would you like?"),
                          (tuple(Button(name, f"l:{code}") for code, name in
                                 LANGUAGE_NAMES.items()),)),
                    state=State.CHOOSING_LANGUAGE)


def language_button(ctx: Context) -> Step:
    """Switch to the language the customer tapped."""
    if ctx.argument not in LANGUAGE_NAMES:
        return expired(ctx)
    return _switch_language(ctx, ctx.argument)


def _switch_language(ctx: Context, language: str) -> Step:
    switched = replace(ctx, conversation=replace(ctx.conversation, language=language),
                       t=ctx.texts_for(language))
    return switched.step(Reply(switched.t(
        # NOTE: translators name their own language here ("… auf Deutsch", "… по-русски").
        "From now on I will write in English."),
                               switched.menu()), commands=(SetLanguage(language),))


def stop_notifications(ctx: Context) -> Step:
    """Stop pushes (a cancellation still reaches the customer) and say how to restart them."""
    return ctx.step(Reply(ctx.t("I will not send you any more messages, except if your visit "
                                "is cancelled. To turn them on again, send /start or tap the "
                                "button."),
                          ((Button(ctx.t("Turn messages on again"), "m:notify_on"),),)),
                    commands=(SetNotifications(False),))


def notifications_on(ctx: Context) -> Step:
    """Turn pushes on again."""
    return ctx.step(Reply(ctx.t("Messages are on again: I will tell you when your technician "
                                "is on the way or anything changes."), ctx.menu()),
                    commands=(SetNotifications(True),))


# Small talk and the rest ----------------------------------------------------------------------


def greet(ctx: Context) -> Step:
    """Say hello and what the bot can do."""
    return ctx.step(Reply(ctx.t("Hello! I am the assistant for your technician visit (order "
                                "{number}). What can I do for you?", number=ctx.order.number),
                          ctx.menu()))


def goodbye(ctx: Context) -> Step:
    """Say goodbye."""
    return ctx.step(Reply(ctx.t("Goodbye! I will let you know if anything changes.")))


def thank(ctx: Context) -> Step:
    """Answer thanks."""
    return ctx.step(Reply(ctx.t("You are welcome! Write to me any time.")))


def help_text(ctx: Context) -> Step:
    """List what the bot can do."""
    return ctx.step(Reply(ctx.t(
        "I can help you with your technician visit:\n"
        "• tell you when the technician comes (“when is the technician coming?”)\n"
        "• move the visit (“move”, “Thursday afternoon”)\n"
        "• cancel it, leave a note for the technician, tell you how to recognise them\n"
        "• connect you with a person.\n"
        "Write in German, English, Turkish, Russian or Arabic."), ctx.menu()))


def handoff_button(ctx: Context) -> Step:
    """A handoff's button after the handoff ended: the bot is back anyway."""
    if ctx.argument == "back":
        return ctx.step(Reply(ctx.t("I am your assistant again. What can I do for you?"),
                              ctx.menu()))
    return expired(ctx)


def deny_without_question(ctx: Context) -> Step:
    """A no with nothing asked: right after a delay it rejects the new time, so offer a move."""
    if _recent(ctx, "delay_told_at"):
        return reschedule(ctx)
    return affirm_without_question(ctx)


def affirm_without_question(ctx: Context) -> Step:
    """A yes with nothing asked: say so and offer the main actions."""
    return ctx.step(Reply(ctx.t("All right. What can I do for you?"), ctx.menu()))


def identify(ctx: Context) -> Step:
    """The chat already knows its order; never say anything about other orders."""
    return ctx.step(Reply(ctx.t("This chat is linked to your order {number}. What can I do for "
                                "you?", number=ctx.order.number), ctx.menu()))


def out_of_scope(ctx: Context) -> Step:
    """Say honestly what the bot cannot do."""
    return ctx.step(Reply(ctx.t("I can only help with your technician visit. For contracts, "
                                "bills, tariffs and devices, please contact our customer "
                                "service."), ctx.menu()))


def not_understood(ctx: Context) -> Step:
    """Answer a message the NLU did not understand (or could not read) with buttons."""
    if isinstance(ctx.incoming, TextMessage) and not ctx.incoming.parsed.available:
        return ctx.step(Reply(ctx.t("I cannot read free text at the moment. Please use the "
                                    "buttons:"), ctx.menu()), state=ctx.conversation.state)
    misses = int(ctx.conversation.data.get("misses", 0)) + 1
    if misses >= MISSES_BEFORE_A_PERSON:
        return handoff(ctx, "not_understood", lead=ctx.t(
            "I am sorry, I keep misunderstanding you."))
    return ctx.step(Reply(ctx.t("Sorry, I did not understand that. Could you say it "
                                "differently, or choose:"), ctx.menu()),
                    state=ctx.conversation.state, misses=misses)


Handler = Callable[[Context], Step]

# What each input does in a state; anything not listed falls through to INTENTS below.
TRANSITIONS: dict[State, dict[str, Handler]] = {
    State.CHOOSING_SLOT: {"number": pick_by_text, "choose_slot": pick_by_text,
                          "affirm": pick_by_text, "deny": later_slots,
                          "reschedule": pick_by_text},
    State.CONFIRMING_SLOT: {"yes": book, "affirm": book, "no": decline_slot,
                            "deny": decline_slot, "choose_slot": pick_by_text,
                            "number": pick_by_text},
    State.CONFIRMING_CANCEL: {"yes": cancel_visit, "affirm": cancel_visit, "cancel": cancel_visit,
                              "no": keep_visit, "deny": keep_visit},
    State.AWAITING_NOTE: {kind: save_note for kind in (
        "leave_note", "out_of_scope", NOT_UNDERSTOOD, "identify", "ask_preparation", "affirm",
        "deny", "choose_slot", "give_feedback", "number", "help")},
    State.AWAITING_RATING: {"number": feedback, "give_feedback": feedback, "affirm": feedback},
    State.CHOOSING_LANGUAGE: {"number": not_understood},
}
INTENTS: dict[str, Handler] = {
    "greet": greet, "goodbye": goodbye, "thank": thank, "help": help_text,
    "affirm": affirm_without_question, "deny": deny_without_question,
    "ask_status": status, "reschedule": reschedule, "choose_slot": reschedule,
    "cancel": ask_cancel, "identify": identify, "leave_note": leave_note,
    "ask_preparation": preparation, "verify_technician": verify_technician,
    "human_handoff": handoff, "give_feedback": feedback, "ask_compensation": compensation,
    "change_language": change_language, "stop_notifications": stop_notifications,
    "notifications_on": notifications_on, "out_of_scope": out_of_scope,
    NOT_UNDERSTOOD: not_understood, "number": number_outside_offer, "rating": feedback,
    "slot_button": pick_by_button, "yes": expired, "no": expired, "forged": expired,
    "language_button": language_button, "keep": keep, "failed": command_failed,
    "handoff_button": handoff_button, "waitlist_button": waitlist_button,
}
