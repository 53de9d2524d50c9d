"""One sender at a time across replicas: a PostgreSQL advisory lock held on its own connection.

The bot's send rate (Telegram's ~30 messages a second per bot) and a 429's pause are then one
process's limiter, whatever the number of replicas. When the sending replica dies its
connection closes and PostgreSQL drops the lock; another replica takes it within
`pushes.leader_poll_seconds`. SQLite is one process's database: it always sends.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)
# "techbot:sender" as a 63-bit number: the one advisory lock key of the outbox's sender.
SENDER_LOCK = int.from_bytes(b"techbot:sender"[:8], "big") & (2**63 - 1)


class SenderLease:
    """Say whether this process is the one that sends; take the lease when it is free."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None

    @property
    def held_before(self) -> bool:
        """Say whether this process held the lease at the last look."""
        return not self.shared or self._connection is not None

    def hold(self) -> bool:
        """Keep or take the lease; False while another replica holds it."""
        if not self.shared:
            return True
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except Exception:  # the database restarted or dropped us: the lock is gone
                log.warning("sender lease lost with its database connection")
                self._drop()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                         {"key": SENDER_LOCK}))
        except Exception:
            connection.invalidate()
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        log.info("this replica sends the outbox now (sender lease taken)")
        return True

    def release(self) -> None:
        """Give the lease up, so another replica takes over at once."""
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                     {"key": SENDER_LOCK})
            self._connection.close()
        except Exception:
            self._drop()
        self._connection = None

    def _drop(self) -> None:
        if self._connection is not None:
            # A connection in an unknown state never goes back to the pool with a lock on it.
            self._connection.invalidate()
            self._connection.close()
        self._connection = None
