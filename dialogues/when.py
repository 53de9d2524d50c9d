"""Understand a customer's wish for a time ("Donnerstag nachmittag", "الخميس بعد الظهر")."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateparser.search import search_dates

from dialogues.model import SlotView

# Parts of the day, as local hours [from, to) in which a window must start.
PARTS = {"morning": (0, 12), "midday": (11, 14), "afternoon": (12, 17), "evening": (16, 24)}
# Longer phrases first: "öğleden sonra" must win over "öğle".
PART_WORDS: dict[str, dict[str, str]] = {
    "de": {"vormittags": "morning", "vormittag": "morning", "morgens": "morning",
           "früh": "morning", "frueh": "morning", "nachmittags": "afternoon",
           "nachmittag": "afternoon", "mittags": "midday", "mittag": "midday",
           "abends": "evening", "abend": "evening"},
    "en": {"in the morning": "morning", "morning": "morning", "mornings": "morning",
           "am": "morning", "noon": "midday", "lunchtime": "midday", "afternoon": "afternoon",
           "afternoons": "afternoon", "pm": "afternoon", "evening": "evening",
           "evenings": "evening"},
    "tr": {"öğleden sonra": "afternoon", "ogleden sonra": "afternoon",
           "öğleden önce": "morning", "ogleden once": "morning", "sabah": "morning",
           "sabahleyin": "morning", "öğlen": "midday", "oglen": "midday", "öğle": "midday",
           "ogle": "midday", "akşam": "evening", "aksam": "evening", "ikindi": "afternoon"},
    "ru": {"после обеда": "afternoon", "до обеда": "morning", "с утра": "morning",
           "утром": "morning", "утро": "morning", "днем": "afternoon", "днём": "afternoon",
           "в обед": "midday", "вечером": "evening", "вечер": "evening"},
    "ar": {"بعد الظهر": "afternoon", "قبل الظهر": "morning", "الصبح": "morning",
           "الصباح": "morning", "صباحا": "morning", "صباح": "morning", "الظهر": "midday",
           "العصر": "afternoon", "المسا": "evening", "المساء": "evening", "مساء": "evening"},
}
# "after 2", "ab 14 uhr", "saat 2'den sonra", "после 14", "بعد الساعة 2"
AFTER_HOUR = {
    "de": re.compile(r"\b(?:ab|nach)\s+(\d{1,2})(?:[:.]\d{2})?\s*(?:uhr)?\b"),
    "en": re.compile(r"\bafter\s+(\d{1,2})(?:[:.]\d{2})?\s*(?:am|pm|o'?clock)?\b"),
    "tr": re.compile(r"(?:saat\s+)?(\d{1,2})(?:[:.]\d{2})?\s*['’]?(?:den|dan|ten|tan)\s+sonra"),
    "ru": re.compile(r"\bпосле\s+(\d{1,2})(?:[:.]\d{2})?"),
    "ar": re.compile(r"بعد\s+(?:الساعة|الساعه|ساعة)?\s*(\d{1,2})"),
}
# Relative days that the date parser does not know in their colloquial spelling.
RELATIVE_DAYS = {
    "tr": {"yarin": 1, "obur gun": 2, "öbür gün": 2, "ertesi gun": 2},
    "ar": {"بكرا": 1, "بكره": 1, "بكرة": 1, "بعد بكرا": 2, "بعد بكره": 2},
    "de": {"übermorgen": 2, "uebermorgen": 2},
}
_DAY_MONTH = re.compile(r"\b(\d{1,2})[./](\d{1,2})\.?(?!\d)")
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")


@dataclass(frozen=True)
class Wish:
    """A time the customer asked for: a day, a part of the day, an earliest hour."""

    day: date | None = None
    part: str | None = None
    after_hour: int | None = None

    @property
    def empty(self) -> bool:
        """Say whether the message named no time at all."""
        return self.day is None and self.part is None and self.after_hour is None

    def admits(self, slot: SlotView, zone: ZoneInfo) -> bool:
        """Say whether a window fits the wish."""
        start = slot.start.astimezone(zone)
        if self.day is not None and start.date() != self.day:
            return False
        if self.part is not None:
            low, high = PARTS[self.part]
            if not low <= start.hour < high:
                return False
        return self.after_hour is None or start.hour >= self.after_hour


def _whole_word(phrase: str, text: str) -> re.Match[str] | None:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)


def parse_wish(text: str, *, language: str, now: datetime, zone: ZoneInfo) -> Wish:
    """Read the day, part of day and earliest hour a message asks for."""
    text = text.lower().translate(_DIGITS)
    local_now = now.astimezone(zone)
    part = None
    for phrase, name in PART_WORDS.get(language, {}).items():
        if _whole_word(phrase, text):
            part = name
            text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", text, count=1)
            break
    after = None
    pattern = AFTER_HOUR.get(language)
    match = pattern.search(text) if pattern else None
    if match:
        hour = int(match.group(1))
        # "after 2" in a visit calendar of 8 to 18 o'clock means 14:00.
        after = hour + 12 if hour < 8 else hour
        text = text[:match.start()] + " " + text[match.end():]
    return Wish(day=_parse_day(text, language, local_now), part=part,
                after_hour=after if after is not None and after < 24 else None)


def _parse_day(text: str, language: str, local_now: datetime) -> date | None:
    for phrase, days in sorted(RELATIVE_DAYS.get(language, {}).items(), key=lambda kv: -len(kv[0])):
        if _whole_word(phrase, text):
            return local_now.date() + timedelta(days=days)
    match = _DAY_MONTH.search(text)
    if match:
        day, month = int(match.group(1)), int(match.group(2))
        for year in (local_now.year, local_now.year + 1):
            try:
                candidate = date(year, month, day)
            except ValueError:
                return None
            if candidate >= local_now.date():
                return candidate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dateparser warns about its own regex internals
        found = search_dates(
            text, languages=[language],
            settings={"PREFER_DATES_FROM": "future",
                      "RELATIVE_BASE": local_now.replace(tzinfo=None),
                      "REQUIRE_PARTS": [], "STRICT_PARSING": False},
        )
    # A lone number is a pick from the list, not the n-th of the month; a two-letter match is
    # a word like "we" that dateparser takes for "Wednesday". The longest phrase wins.
    candidates = sorted(
        ((phrase.strip(), moment) for phrase, moment in found or []
         if len(phrase.strip()) > 2 and not phrase.strip().isdigit()
         and moment.date() >= local_now.date()),
        key=lambda pair: -len(pair[0]),
    )
    return candidates[0][1].date() if candidates else None


ORDINAL_WORDS: dict[str, dict[str, int]] = {
    "de": {"erste": 1, "ersten": 1, "erster": 1, "zweite": 2, "zweiten": 2, "dritte": 3,
           "dritten": 3, "vierte": 4, "vierten": 4, "fünfte": 5, "fuenfte": 5, "fünften": 5,
           "letzte": -1, "letzten": -1},
    "en": {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1,
           "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5},
    "tr": {"ilk": 1, "ilki": 1, "birinci": 1, "ikinci": 2, "ikincisi": 2, "üçüncü": 3,
           "ucuncu": 3, "üçüncüsü": 3, "dördüncü": 4, "dorduncu": 4, "beşinci": 5,
           "besinci": 5, "son": -1, "sonuncu": -1, "sonuncusu": -1},
    "ru": {"первый": 1, "первое": 1, "первую": 1, "второй": 2, "второе": 2, "вторую": 2,
           "третий": 3, "третье": 3, "третью": 3, "четвертый": 4, "четвёртый": 4,
           "пятый": 5, "последний": -1, "последнее": -1},
    "ar": {"الاول": 1, "الأول": 1, "الثاني": 2, "التاني": 2, "الثالث": 3, "التالت": 3,
           "الرابع": 4, "الخامس": 5, "الاخير": -1, "الأخير": -1},
}
_NUMBER = re.compile(r"^\D{0,12}?(\d{1,2})\D{0,12}$")


def parse_pick(text: str, *, language: str, entity: str | None, count: int) -> int | None:
    """Return the 0-based index of an offered option the message picks, or None."""
    if entity is not None:
        value = entity.strip().lower()
        if value in ("last", "-1"):
            return count - 1 if count else None
        if value.isdigit():
            return int(value) - 1 if 1 <= int(value) <= count else None
        words = {w: n for table in ORDINAL_WORDS.values() for w, n in table.items()}
        if value in words:
            n = words[value]
            return count - 1 if n == -1 else (n - 1 if n <= count else None)
    lowered = text.lower().translate(_DIGITS)
    match = _NUMBER.match(lowered.strip())
    if match and 1 <= int(match.group(1)) <= count:
        return int(match.group(1)) - 1
    for word, n in ORDINAL_WORDS.get(language, {}).items():
        if _whole_word(word, lowered):
            return count - 1 if n == -1 else (n - 1 if n <= count else None)
    return None
