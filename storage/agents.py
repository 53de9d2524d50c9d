"""The service team's agents: who may log in to the console, and in which languages."""

from __future__ import annotations

from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Agent

_HASHER = PasswordHasher()  # argon2id with the library's maintained defaults
# Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash("not a password of anyone")


def put_agent(session: Session, *, name: str, password: str, languages: list[str],
              now: datetime) -> bool:
    """Add the agent or set a new password and languages; say whether it was new."""
    agent = session.get(Agent, name)
    hashed = _HASHER.hash(password)
    if agent is None:
        session.add(Agent(name=name, password_hash=hashed, languages=languages, created_at=now))
        return True
    agent.password_hash, agent.languages, agent.disabled = hashed, languages, False
    return False


def disable_agent(session: Session, *, name: str) -> bool:
    """Stop the agent from logging in; False if there is no such agent."""
    agent = session.get(Agent, name)
    if agent is None:
        return False
    agent.disabled = True
    return True


def list_agents(session: Session) -> list[Agent]:
    """Return every agent, by name."""
    return list(session.scalars(select(Agent).order_by(Agent.name)))


def get_agent(session: Session, *, name: str) -> Agent | None:
    """Return the agent if they exist and may log in."""
    agent = session.get(Agent, name)
    return agent if agent is not None and not agent.disabled else None


def check_password(session: Session, *, name: str, password: str) -> Agent | None:
    """Return the agent whose name and password match, else None (in about the same time)."""
    agent = get_agent(session, name=name)
    try:
        _HASHER.verify(agent.password_hash if agent else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if agent is not None and _HASHER.check_needs_rehash(agent.password_hash):
        agent.password_hash = _HASHER.hash(password)
    return agent
