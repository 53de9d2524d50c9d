"""`techbot chat` with piped input, the real NLU server and the demo data, in five languages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlu.project import PROJECT_ROOT
from tests.factories import text_prefix

pytestmark = [pytest.mark.rasa, pytest.mark.slow]

# (demo order, status question, wish to move, yes) as customers of each language write them.
SCRIPTS = {
    "de": ("40000001", "wann kommt der techniker", "verschieben", "ja"),
    "en": ("40000002", "when is the technician coming", "i need to reschedule", "yes"),
    "tr": ("40000003", "teknisyen ne zaman gelecek", "randevuyu ertelemek istiyorum", "evet"),
    "ru": ("40000004", "когда придет мастер", "хочу перенести визит", "да"),
    "ar": ("40000005", "متى يجي الفني", "بدي أأجل الموعد", "نعم"),
}






@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_status_offer_pick_and_confirm_in_every_language(
    demo_env: dict[str, str], language: str
) -> None:
    order, status, move, yes = SCRIPTS[language]
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--order", order],
        input=f"{status}\n{move}\n2\n{yes}\n", capture_output=True, text=True, env=demo_env,
        cwd=PROJECT_ROOT, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert text_prefix(language, "Your visit is booked for {window}.") in out
    assert text_prefix(language, "Shall I move your visit to {window}?") in out
    confirmation = text_prefix(language, "Done: your visit is now booked for {window}. I will "
                                     "remind you the evening before.")
    assert confirmation in out, out
    chosen = out.split("(pressed: ")[1].split(")\n")[0]
    assert chosen in out.split(confirmation)[1].split("\n")[0]  # booked what was pressed
    assert "Traceback" not in done.stderr


def test_an_unknown_order_is_a_clear_message(demo_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--order", "99999999"],
                          input="hallo\n", capture_output=True, text=True, env=demo_env,
                          cwd=PROJECT_ROOT, timeout=60, check=False)
    assert done.returncode == 2 and "99999999" in done.stdout


def test_the_demo_data_dir_is_a_temporary_one(demo_env: dict[str, str]) -> None:
    assert Path(demo_env["TECHBOT_DATA_DIR"]).exists()
