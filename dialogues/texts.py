"""Customer-facing text in one language: gettext for words, Babel for dates and times."""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time


@dataclass(frozen=True)
class Texts:
    """Translate and format for one customer: their language, the visit's time zone."""

    language: str
    catalog: gettext.NullTranslations
    timezone: str = "Europe/Berlin"

    def __call__(self, message: str, **values: object) -> str:
        """Translate a message and fill in its named values."""
        text = self.catalog.gettext(message)
        return text.format(**values) if values else text

    t = __call__  # the name `pybabel extract -k t` looks for

    def plural(self, singular: str, plural: str, count: int, **values: object) -> str:
        """Translate a message whose form depends on a number (Russian and Arabic have many)."""
        return self.catalog.ngettext(singular, plural, count).format(count=count, **values)

    def local(self, moment: datetime) -> datetime:
        """Return the moment in the visit's time zone."""
        return moment.astimezone(ZoneInfo(self.timezone))

    def day(self, moment: datetime) -> str:
        """Say the weekday and date, as the customer's locale writes them."""
        return format_date(self.local(moment), format="full", locale=self.language)

    def time(self, moment: datetime) -> str:
        """Say the time of day, as the customer's locale writes it."""
        return format_time(self.local(moment), format="short", locale=self.language)

    def day_from(self, moment: datetime, now: datetime) -> str:
        """Say the day as seen from now: "today, …", "tomorrow, …", or the date."""
        days = (self.local(moment).date() - self.local(now).date()).days
        if days == 0:
            return self.t("today, {date}", date=self.day(moment))
        if days == 1:
            return self.t("tomorrow, {date}", date=self.day(moment))
        return self.day(moment)

    def window(self, start: datetime, end: datetime, now: datetime | None = None) -> str:
        """Say a window: its day (as seen from now, when given) and the two times."""
        day = self.day_from(start, now) if now is not None else self.day(start)
        return self.t("{day}, {start}–{end}", day=day, start=self.time(start),
                      end=self.time(end))

    def times(self, start: datetime, end: datetime) -> str:
        """Say two times of the same day."""
        return self.t("{start}–{end}", start=self.time(start), end=self.time(end))
