"""What the NLU returns: plain values, no I/O, shared by the client and the dialogues."""

from __future__ import annotations

from dataclasses import dataclass

NOT_UNDERSTOOD = "nlu_fallback"  # Rasa's FallbackClassifier uses the same name


@dataclass(frozen=True)
class Entity:
    """One extracted entity: its name and its (normalised) value."""

    entity: str
    value: str


@dataclass(frozen=True)
class Parsed:
    """What the NLU made of a message."""

    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    language: str = "de"
    available: bool = True  # False when the server was down or slow

    def entity(self, name: str) -> str | None:
        """Return the first value of the named entity, or None."""
        return next((e.value for e in self.entities if e.entity == name), None)
