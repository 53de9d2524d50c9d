"""Request bodies of the ops API, validated so a bad field gets a 422 that names it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and control characters have no place in these fields.
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _message_text(value: str) -> str:
    # An agent's message keeps its line breaks; other control characters and NUL go.
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters other than line breaks")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _sane_time(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (ISO 8601, e.g. 2026-11-26T09:00:00+01:00)")
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must lie between the years 2000 and 2100")
    return value.astimezone(UTC)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known IANA time zone (e.g. Europe/Berlin)") from None
    return value


ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200),
                      AfterValidator(_printable)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=500),
                     AfterValidator(_printable)]
PostalCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z -]{3,10}$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Time = Annotated[datetime, AfterValidator(_sane_time)]
Zone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_zone)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()/-]{3,30}$")]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerIn(Strict):
    name: ShortText
    postal_code: PostalCode
    language: Literal["de", "en", "tr", "ru", "ar"] | None = None
    phone: Phone | None = None
    id: Identifier | None = Field(None, description="the customer's id in the operator's CRM")


class AddressIn(Strict):
    street: ShortText
    postal_code: PostalCode
    city: ShortText
    lat: Latitude | None = None
    lon: Longitude | None = None


class WindowIn(Strict):
    start: Time
    end: Time

    def model_post_init(self, _context: object) -> None:
        if self.end <= self.start:
            raise ValueError("end must be after start")


class OrderIn(Strict):
    customer: CustomerIn
    address: AddressIn
    appointment: WindowIn | None = None
    technician_id: Identifier | None = None
    region: Identifier | None = None
    timezone: Zone | None = None
    monthly_fee_cents: int | None = Field(None, ge=0, le=10_000_000)
    job_type: Identifier | None = Field(
        None, description="the kind of job (e.g. install, repair): the arrival model learns "
                          "how long each kind takes")


class EventIn(Strict):
    type: Literal["en_route", "eta", "arrived", "completed", "cancelled", "no_show"]
    at: Time | None = None
    eta: Time | None = None
    reason: LongText | None = None


class TechnicianIn(Strict):
    name: ShortText
    code_word: Annotated[str, StringConstraints(min_length=1, max_length=64),
                         AfterValidator(_printable)] | None = None


class StopIn(Strict):
    order: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")]
    planned_minutes: int = Field(ge=1, le=720)


class RouteIn(Strict):
    stops: list[StopIn] = Field(max_length=100)


class PositionIn(Strict):
    lat: Latitude
    lon: Longitude
    at: Time


class SlotIn(Strict):
    start: Time
    end: Time
    capacity: int = Field(ge=0, le=10_000)

    def model_post_init(self, _context: object) -> None:
        if self.end <= self.start:
            raise ValueError("end must be after start")


class CapacityIn(Strict):
    slots: list[SlotIn] = Field(max_length=96)


AgentName = Annotated[str, StringConstraints(min_length=1, max_length=100),
                      AfterValidator(_printable)]


class ClaimIn(Strict):
    agent: AgentName


class AgentMessageIn(Strict):
    agent: AgentName
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000),
                    AfterValidator(_message_text)]


class CloseIn(Strict):
    agent: AgentName
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class MessageIn(Strict):
    """An agent's message in the console: the agent is who is logged in."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=4000),
                    AfterValidator(_message_text)]


class NoteIn(Strict):
    """The console's close: an optional note."""

    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
