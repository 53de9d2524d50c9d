"""The README's demo recipe, piped into `techbot demo` with the real NLU, in five languages."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest

from dialogues.texts import Texts
from locales import load_catalog
from nlu.project import PROJECT_ROOT
from storage.db import make_engine, make_session_factory, transaction
from storage.orders import require_order
from tests.factories import text_prefix as _text

pytestmark = [pytest.mark.rasa, pytest.mark.slow]

# The recipe (status, move, a window's number, yes, a note, five stars) in each language's own
# words, as its customers write them (nlu/data).
RECIPES = {
    "de": ("40000001", "wann kommt der techniker", "verschieben", "ja",
           "die klingel ist kaputt bitte anrufen", "5 sterne"),
    "en": ("40000002", "when is the technician coming", "i need to reschedule", "yes",
           "the bell is broken please call me", "5 stars"),
    "tr": ("40000003", "teknisyen ne zaman gelecek", "randevuyu ertelemek istiyorum", "evet",
           "zil bozuk telefon edin", "5 yıldız"),
    "ru": ("40000004", "когда придет мастер", "хочу перенести визит", "да",
           "звонок не работает, стучите", "5 звезд"),
    "ar": ("40000005", "متى يجي الفني", "بدي أأجل الموعد", "نعم",
           "في عندي كلب بس ما بيعض", "بعطيه 5 نجوم"),
}
# What a log line or a crash looks like, in text or JSON form.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b"
                      r"|apscheduler|\"level\":|Traceback", re.MULTILINE)
# The demo clock runs 360 times the wall clock: an offer valid 30 minutes is 5 s of reading.
READING_SECONDS = 6






def _window_of(data_dir: str, number: str) -> datetime | None:
    engine = make_engine(f"sqlite:///{Path(data_dir) / 'techbot.sqlite3'}")
    try:
        with transaction(make_session_factory(engine)) as session:
            return require_order(session, number=number).window_start
    finally:
        engine.dispose()


class Reader(threading.Thread):
    """Collect a stream's text as it comes."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(daemon=True)
        assert stream is not None
        self.stream, self.text = stream, ""

    def run(self) -> None:
        for line in self.stream:
            self.text += line

    def wait_for(self, wanted: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.text:
            assert time.monotonic() < deadline, f"no {wanted!r} in:\n{self.text}"
            time.sleep(0.1)


@pytest.mark.parametrize("language", sorted(RECIPES))
def test_the_readme_recipe_moves_the_visit_with_nothing_but_the_conversation(
    demo_env: dict[str, str], language: str
) -> None:
    order, status, move, yes, note, stars = RECIPES[language]
    booked_before = _window_of(demo_env["TECHBOT_DATA_DIR"], order)
    demo = subprocess.Popen([sys.executable, "-m", "bot.cli", "demo", "--order", order],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=demo_env, cwd=PROJECT_ROOT)
    assert demo.stdin is not None
    out, err = Reader(demo.stdout), Reader(demo.stderr)
    out.start()
    err.start()
    try:
        demo.stdin.write(f"{status}\n{move}\n")
        demo.stdin.flush()
        out.wait_for(_text(language, "Which window suits you? Tap one or write its number, or "
                                     "a day and time like “Thursday afternoon”."))
        time.sleep(READING_SECONDS)  # the customer reads the offer, on the wall clock
        demo.stdin.write(f"2\n{yes}\n{note}\n{stars}\n")
        demo.stdin.close()
        code = demo.wait(timeout=120)
    finally:
        demo.kill()
    out.join(timeout=10)
    err.join(timeout=10)

    assert code == 0, err.text[-2000:]
    log_file = Path(demo_env["TECHBOT_DATA_DIR"]) / "logs" / "techbot-demo.log"
    assert err.text.splitlines() == [f"techbot: the log goes to {log_file}"]
    assert not LOG_LINE.search(out.text), out.text
    assert _text(language, "This offer has expired. Here is what I can do now:") not in out.text
    confirmation = _text(language, "Done: your visit is now booked for {window}. I will remind "
                                   "you the evening before.")
    assert confirmation in out.text, out.text
    chosen = out.text.split("(pressed: ")[1].split(")\n")[0]
    assert chosen in out.text.split(confirmation)[1].split("\n")[0]  # booked what was pressed
    assert _window_of(demo_env["TECHBOT_DATA_DIR"], order) != booked_before
    assert _text(language, "I will pass this on to the technician: “{note}”") in out.text
    assert note in out.text
    thanks = Texts(language, load_catalog(language)).plural(
        "Thank you for your rating of {count} star!", "Thank you for your rating of {count} "
        "stars!", 5)
    assert thanks in out.text, out.text
