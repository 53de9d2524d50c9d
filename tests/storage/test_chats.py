"""Link tokens, identification, chats and conversations: on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.chats import (
    create_link_token,
    delete_chat_data,
    ensure_chat,
    find_order_for_identification,
    get_chat,
    identify_failures_since,
    link_chat,
    load_conversation,
    record_identify_failure,
    redeem_link_token,
    save_conversation,
)
from storage.db import transaction
from storage.errors import ConversationConflict, LinkTokenInvalid
from storage.models import LinkToken
from tests.conftest import NOW
from tests.factories import make_order


def test_a_link_token_works_once(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        token = create_link_token(session, order_id=order.id, ttl=timedelta(hours=1), now=NOW)
        assert session.query(LinkToken).one().token_hash != token  # only the hash is stored
        assert redeem_link_token(session, token=token, now=NOW).id == order.id
        with pytest.raises(LinkTokenInvalid) as used:
            redeem_link_token(session, token=token, now=NOW)
        assert used.value.reason == "used"


def test_expired_and_unknown_tokens_say_why(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        token = create_link_token(session, order_id=order.id, ttl=timedelta(hours=1), now=NOW)
        with pytest.raises(LinkTokenInvalid) as expired:
            redeem_link_token(session, token=token, now=NOW + timedelta(hours=2))
        assert expired.value.reason == "expired"
        with pytest.raises(LinkTokenInvalid) as unknown:
            redeem_link_token(session, token="nope", now=NOW)
        assert unknown.value.reason == "unknown"


def test_identification_needs_number_and_postal_code(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session, number="31415926", postal_code="10115")
        assert find_order_for_identification(session, number="31415926",
                                             postal_code=" 10115 ") is order
        assert find_order_for_identification(session, number="31415926",
                                             postal_code="10117") is None
        assert find_order_for_identification(session, number="00000000",
                                             postal_code="00000") is None


def test_identify_failures_are_counted_per_chat_and_window(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for minutes in (0, 10, 70):
            record_identify_failure(session, chat_key="tg:1", now=NOW - timedelta(minutes=minutes))
        record_identify_failure(session, chat_key="tg:2", now=NOW)
        assert identify_failures_since(session, chat_key="tg:1",
                                       since=NOW - timedelta(hours=1)) == 2


def test_chats_link_and_forget(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        chat = ensure_chat(session, chat_key="tg:42", telegram_chat_id=42, now=NOW)
        assert ensure_chat(session, chat_key="tg:42", telegram_chat_id=42, now=NOW) is chat
        link_chat(session, chat=chat, order=order)
        assert (chat.order_id, chat.customer_id) == (order.id, order.customer_id)
        save_conversation(session, chat_key="tg:42", state="idle", language="de", data={},
                          now=NOW, expected_version=None)
        delete_chat_data(session, chat_key="tg:42")
        assert get_chat(session, chat_key="tg:42") is None
        assert load_conversation(session, chat_key="tg:42") is None


def test_conversations_refuse_a_lost_update(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        version = save_conversation(session, chat_key="tg:7", state="idle", language="tr",
                                    data={"a": 1}, now=NOW, expected_version=None)
        newer = save_conversation(session, chat_key="tg:7", state="offering", language="tr",
                                  data={"offer": [1, 2]}, now=NOW, expected_version=version)
        with pytest.raises(ConversationConflict):
            save_conversation(session, chat_key="tg:7", state="idle", language="tr", data={},
                              now=NOW, expected_version=version)
    with transaction(sessions) as session:
        stored = load_conversation(session, chat_key="tg:7")
        assert stored is not None
        assert (stored.state, stored.data, stored.version) == ("offering", {"offer": [1, 2]}, newer)
