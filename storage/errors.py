"""Domain errors raised by storage functions."""


class StorageError(Exception):
    """Base of every domain error storage raises."""


class SlotTaken(StorageError):
    """The slot has no capacity left (someone else booked the last place)."""


class SlotNotFound(StorageError):
    """No capacity slot with that id."""


class OrderNotFound(StorageError):
    """No order with that number or id."""


class TechnicianNotFound(StorageError):
    """No technician with that id."""


class LinkTokenInvalid(StorageError):
    """The link token is unknown, already used or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # unknown | used | expired


class ConversationConflict(StorageError):
    """Another worker saved the conversation first."""


class HandoffNotFound(StorageError):
    """No handoff with that id."""


class HandoffConflict(StorageError):
    """The handoff is held by another agent, or already closed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
