"""Render a proactive push as a step of the conversation (a cancellation opens an offer)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dialogues import handoff as handoff_texts
from dialogues.engine import Context, TextsFor, bookable, offer, rating_buttons
from dialogues.model import (
    Button,
    ButtonPress,
    Conversation,
    OrderView,
    Reply,
    Rules,
    State,
    Step,
)


def _when(payload: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(payload[key])


def _keep_or_move(ctx: Context) -> tuple[tuple[Button, ...], ...]:
    return ((Button(ctx.t("Keep the appointment"), "m:keep"),
             Button(ctx.t("Move the visit"), "m:move")),)


def _reason(ctx: Context, payload: dict[str, Any]) -> list[str]:
    return [ctx.t("Reason: {reason}", reason=payload["reason"])] if payload.get("reason") else []


def reminder(ctx: Context, payload: dict[str, Any]) -> Step:
    """The evening before: remind, and offer to keep or move."""
    name = ctx.order.technician_first_name
    window = ctx.t.window(_when(payload, "start"), _when(payload, "end"))
    text = (ctx.t("Reminder: your technician {name} comes tomorrow, {window}. Does that still "
                  "suit you?", name=name, window=window) if name else
            ctx.t("Reminder: your technician comes tomorrow, {window}. Does that still suit "
                  "you?", window=window))
    return ctx.step(Reply(text, _keep_or_move(ctx)))


def window_narrowed(ctx: Context, payload: dict[str, Any]) -> Step:
    """On the day: a much narrower expected window than the booked one, or its update."""
    times = ctx.t.times(_when(payload, "from"), _when(payload, "to"))
    if payload.get("update"):
        return ctx.step(Reply(ctx.t("Update: your technician now expects to arrive between "
                                    "{times}.", times=times)))
    return ctx.step(Reply(ctx.t("Good news: your technician now expects to arrive between "
                                "{times}.", times=times)))


def eta_near(ctx: Context, payload: dict[str, Any]) -> Step:
    """The technician is about N minutes away."""
    minutes = int(payload["minutes"])
    name = ctx.order.technician_first_name
    text = (ctx.t.plural("Your technician {name} is about {count} minute away.",
                         "Your technician {name} is about {count} minutes away.", minutes,
                         name=name) if name else
            ctx.t.plural("Your technician is about {count} minute away.",
                         "Your technician is about {count} minutes away.", minutes))
    return ctx.step(Reply(text))


def delayed(ctx: Context, payload: dict[str, Any]) -> Step:
    """The technician runs late: the new expected arrival, the reason, keep or move."""
    lines = [ctx.t("Your technician is running late. New expected arrival: {times}.",
                   times=ctx.t.times(_when(payload, "from"), _when(payload, "to")))]
    lines += _reason(ctx, payload)
    lines.append(ctx.t("If that no longer suits you, you can move the visit."))
    # A "no" or "a person" soon after this is the customer rejecting the delay.
    return ctx.step(Reply("\n".join(lines), _keep_or_move(ctx)),
                    delay_told_at=ctx.now.isoformat())


def _apology_with_offer(ctx: Context, lines: list[str]) -> Step:
    slots = bookable(ctx)
    if not slots:
        lines.append(ctx.t("A colleague will contact you to find a new appointment."))
        return ctx.step(Reply("\n".join(lines), ((Button(ctx.t("Talk to a person"),
                                                          "m:human"),),)))
    lines.append(ctx.t("Choose a new window right here:"))
    return offer(ctx, slots, "\n".join(lines))


def cancelled_by_operator(ctx: Context, payload: dict[str, Any]) -> Step:
    """The operator cancelled: say so at once, with the reason and new windows."""
    lines = [ctx.t("We are sorry: your visit on {window} has been cancelled.",
                   window=ctx.t.window(_when(payload, "start"), _when(payload, "end")))
             if payload.get("start") else ctx.t("We are sorry: your visit has been cancelled.")]
    return _apology_with_offer(ctx, lines + _reason(ctx, payload))


def rescheduled(ctx: Context, payload: dict[str, Any]) -> Step:
    """Confirm a move, whoever made it."""
    return ctx.step(Reply(ctx.t("Your visit has been moved to {window}.",
                                window=ctx.t.window(_when(payload, "start"),
                                                    _when(payload, "end"))), ctx.menu()))


def rating_request(ctx: Context, payload: dict[str, Any]) -> Step:
    """After the visit: ask for 1 to 5 stars."""
    return ctx.step(Reply(ctx.t("Your visit is complete. How satisfied were you? Please rate it "
                                "from 1 to 5 stars."),
                          rating_buttons()),
                    state=State.AWAITING_RATING)


def missed_visit(ctx: Context, payload: dict[str, Any]) -> Step:
    """The window passed with nobody at the door: apologise, offer windows, mention money."""
    lines = [ctx.t("We are very sorry: the technician did not come in your window {window}.",
                   window=ctx.t.window(_when(payload, "start"), _when(payload, "end"))),
             ctx.t("You are entitled to compensation for the missed appointment (ask me about "
                   "it).")]
    return _apology_with_offer(ctx, lines)


def handoff_claimed(ctx: Context, payload: dict[str, Any]) -> Step:
    """A person took the conversation."""
    return ctx.step(handoff_texts.claimed(ctx.t, payload["agent"]))


def agent_message(ctx: Context, payload: dict[str, Any]) -> Step:
    """A person wrote to the customer."""
    return ctx.step(handoff_texts.agent_message(ctx.t, payload["agent"], payload["text"]))


def handoff_closed(ctx: Context, payload: dict[str, Any]) -> Step:
    """The person handed the conversation back to the bot."""
    return ctx.step(handoff_texts.closed(ctx.t, payload["agent"], ctx.menu()))


def handoff_timeout(ctx: Context, payload: dict[str, Any]) -> Step:
    """Nobody claimed the handoff in time."""
    return ctx.step(handoff_texts.timed_out(ctx.t))


def waitlist_offer(ctx: Context, payload: dict[str, Any]) -> Step:
    """An earlier window freed up and is held for the customer: take it with one tap."""
    offer_id = int(payload["offer"])
    text = ctx.t("Good news: an earlier window has become free: {window}. I am holding it for "
                 "you until {time}. Tap to take it.",
                 window=ctx.t.window(_when(payload, "from"), _when(payload, "to"), ctx.now),
                 time=ctx.t.time(_when(payload, "until")))
    return ctx.step(Reply(text, ((Button(ctx.t("Take it"), f"w:take:{offer_id}"),
                                  Button(ctx.t("No, thanks"), f"w:pass:{offer_id}")),)),
                    waitlist_offer={"id": offer_id, "start": payload["from"],
                                    "end": payload["to"]})


# Pushes of a handoff: sent to the one chat that was handed over, even with pushes turned off.
HANDOFF_KINDS = frozenset({"handoff_claimed", "agent_message", "handoff_closed",
                           "handoff_timeout"})

RENDERERS: dict[str, Callable[[Context, dict[str, Any]], Step]] = {
    "reminder": reminder, "window_narrowed": window_narrowed, "eta_near": eta_near,
    "delayed": delayed, "cancelled_by_operator": cancelled_by_operator,
    "rescheduled": rescheduled, "rating_request": rating_request, "missed_visit": missed_visit,
    "handoff_claimed": handoff_claimed, "agent_message": agent_message,
    "handoff_closed": handoff_closed, "handoff_timeout": handoff_timeout,
    "waitlist_offer": waitlist_offer,
}


def push_step(
    conversation: Conversation,
    kind: str,
    payload: dict[str, Any],
    order: OrderView,
    now: datetime,
    *,
    rules: Rules,
    texts_for: TextsFor,
) -> Step:
    """Render a push in the conversation's language and move the conversation along."""
    ctx = Context(conversation, ButtonPress(""), order, now, rules,
                  texts_for(conversation.language), texts_for, kind)
    result = RENDERERS[kind](ctx, payload)
    new = result.conversation
    for reply in result.replies:
        new = new.remember("bot", reply.text, now)
    return Step(result.replies, new, result.commands)
