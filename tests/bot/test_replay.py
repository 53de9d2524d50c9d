"""`techbot replay` on a day with known answers, on SQLite and PostgreSQL.

One technician, four visits, no positions all day: the first job runs an hour and a half over,
so the second visit is late and must be warned before its window ends; the operator cancels
the third at 11:00; dispatch gives an ETA for the fourth, which becomes "about 20 minutes away".
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.replay import replay
from bot.settings import load_settings

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 3, 3, tzinfo=BERLIN)  # a Tuesday


def at(hour: int, minute: int = 0, day: int = 0) -> str:
    return (DAY + timedelta(days=day, hours=hour, minutes=minute)).isoformat()


def call(moment: str, method: str, path: str, body: dict[str, Any] | None = None) -> str:
    return json.dumps({"at": moment, "method": method, "path": path, "body": body})


def order(number: str, start: int, language: str) -> str:
    return call(at(10, day=-3), "PUT", f"/api/v1/orders/{number}", {
        "customer": {"name": f"Kunde {number}", "postal_code": "10115", "language": language},
        "address": {"street": "Weg 1", "postal_code": "10115", "city": "Berlin"},
        "appointment": {"start": at(start), "end": at(start + 3)},
        "technician_id": "T-1", "region": "city"})


def event(moment: str, number: str, kind: str, **extra: Any) -> str:
    return call(moment, "POST", f"/api/v1/orders/{number}/events", {"type": kind, **extra})


LOG = [
    call(at(9, day=-3), "PUT", "/api/v1/technicians/T-1", {"name": "Jonas Becker"}),
    call(at(9, day=-3), "PUT", f"/api/v1/capacity/city/{(DAY + timedelta(days=2)).date()}",
         {"slots": [{"start": at(h, day=2), "end": at(h + 3, day=2), "capacity": 5}
                    for h in (8, 11, 14)]}),
    order("60000001", 8, "de"), order("60000002", 10, "en"),
    order("60000003", 12, "tr"), order("60000004", 14, "ru"),
    call(at(17, day=-1), "PUT", f"/api/v1/technicians/T-1/route/{DAY.date()}",
         {"stops": [{"order": n, "planned_minutes": 60}
                    for n in ("60000001", "60000002", "60000003", "60000004")]}),
    event(at(7, 50), "60000001", "en_route"),
    event(at(8, 15), "60000001", "arrived"),
    event(at(10, 45), "60000001", "completed"),  # planned 60 minutes, took 150
    event(at(10, 45), "60000002", "en_route"),
    event(at(11, 0), "60000003", "cancelled", reason="Material fehlt"),
    event(at(11, 5), "99999999", "arrived"),  # an order nobody knows: refused, reported
    event(at(13, 20), "60000002", "arrived"),  # window 10-13: late
    event(at(14, 10), "60000002", "completed"),
    event(at(14, 10), "60000004", "en_route"),
    event(at(14, 10), "60000004", "eta", eta=at(14, 45)),
    event(at(14, 45), "60000004", "arrived"),
    event(at(15, 40), "60000004", "completed"),
]


def run(tmp_path: Path, database_url: str | None = None, *, ask: float | None = 15
        ) -> tuple[list[dict[str, Any]], str]:
    log = tmp_path / "dispatch.jsonl"
    log.write_text("\n".join(LOG) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = replay(load_settings(), log, out=out, ask_every_minutes=ask, tick_seconds=None,
                  database_url=database_url, complain=err)
    assert code == 0
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def pushes(lines: list[dict[str, Any]], number: str, kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["order"] == number and line["kind"] == kind]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.slow
def test_a_day_with_known_answers(tmp_path: Path, db_url: str) -> None:
    lines, errors = run(tmp_path, db_url)
    # Every line has the interface's fields, times with their offset.
    for line in lines:
        assert set(line) >= {"at", "order", "kind", "window", "eta"}
        assert moment(line["at"]).utcoffset() is not None
        if line["kind"] != "status":
            assert set(line) == {"at", "order", "kind", "text", "window", "eta", "minutes"}
    assert "line 13" in errors and "404" in errors  # the unknown order, by its line number
    # The evening before, each customer is reminded, in their own language.
    reminders = {line["order"]: line for line in lines if line["kind"] == "reminder"}
    assert set(reminders) == {"60000001", "60000002", "60000003", "60000004"}
    assert "Erinnerung" in reminders["60000001"]["text"]
    assert "Reminder" in reminders["60000002"]["text"]
    # The overrun: visit 2 (window 10-13) hears of the delay before 13:00, with a new window.
    (delay, *more) = pushes(lines, "60000002", "delayed")
    assert moment(delay["at"]) < moment(at(13))
    assert moment(delay["window"]["end"]) > moment(at(13))
    assert moment(delay["eta"]) > moment(at(13)) and delay["minutes"] is None
    assert len(more) <= 1  # told again only if the news changed materially
    # The cancellation goes out at once with the reason and new windows.
    (cancelled,) = pushes(lines, "60000003", "cancelled_by_operator")
    assert moment(cancelled["at"]) == moment(at(11))
    assert "Material fehlt" in cancelled["text"] and "1." in cancelled["text"]
    # The dispatcher's ETA (14:45) becomes "about 20 minutes away", once, before the door.
    (near,) = pushes(lines, "60000004", "eta_near")
    assert moment(at(14, 10)) <= moment(near["at"]) < moment(at(14, 45))
    assert near["minutes"] is not None and 5 <= near["minutes"] <= 35
    # Each finished visit gets its rating request.
    assert {line["order"] for line in lines if line["kind"] == "rating_request"} == {
        "60000001", "60000002", "60000004"}
    # Status answers: every 15 minutes, for visits of the day not yet reached, windows that
    # never open before the booked window and never lie in the past.
    status = [line for line in lines if line["kind"] == "status"]
    assert {moment(s["at"]).minute for s in status} <= {0, 15, 30, 45}
    for s in status:
        asked = moment(s["at"])
        assert moment(s["window"]["start"]) >= asked - timedelta(seconds=1)
        assert moment(s["window"]["start"]) <= moment(s["window"]["end"])
    assert not [s for s in status if s["order"] == "60000002"
                and moment(s["at"]) >= moment(at(13, 20))]  # arrived: no longer asked
    assert not [s for s in status if s["order"] == "60000003"
                and moment(s["at"]) > moment(at(11))]  # cancelled


@pytest.mark.slow
def test_the_replay_is_deterministic_and_asks_only_when_told(tmp_path: Path) -> None:
    first, _ = run(tmp_path)
    second, _ = run(tmp_path)
    assert first == second
    quiet, _ = run(tmp_path, ask=None)
    assert [line for line in first if line["kind"] != "status"] == quiet


def test_a_bad_log_line_is_reported_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text("not json\n" + json.dumps({"at": "2026-03-02T08:00:00", "method": "PUT",
                                              "path": "/x"}) + "\n" + LOG[0] + "\n",
                   encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert replay(load_settings(), log, out=out, ask_every_minutes=None, tick_seconds=None,
                  database_url=None, complain=err) == 0
    assert "line 1:" in err.getvalue() and "line 2:" in err.getvalue()
    assert out.getvalue() == ""
