"""The log scan of the whole suite catches what it is meant to catch."""

from __future__ import annotations

import logging

from tests.conftest import COLLECTED, SECRETS_IN_TESTS


def test_the_scan_sees_the_suites_logs_and_knows_a_leak() -> None:
    logging.getLogger("techbot.probe").info("order 40000001 changed")
    assert any("order 40000001 changed" in line for line in COLLECTED.lines)
    assert SECRETS_IN_TESTS.search("customer at Musterweg 1, +49 171 5550123")
    assert not SECRETS_IN_TESTS.search("order 40000001 changed")
