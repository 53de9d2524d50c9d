"""Proactive pushes: the tick that decides what fell due, the sender that delivers the outbox."""
