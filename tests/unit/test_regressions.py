"""Regression tests for bugs found by the unit tables: each states what a support team expects."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailesc.classify import People, classify
from mailesc.config import load_config
from mailesc.errors import ConfigError, StoreError
from mailesc.model import Kind, Message, RawMessage, ThreadMessage
from mailesc.parse import parse_message
from mailesc.store import Store
from mailesc.threads import ThreadIndex, normalize_subject

SEEN = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def parse(data: bytes):
    return parse_message(RawMessage(key="1", folder="INBOX", data=data, arrived=None), SEEN)


# 1. threads.normalize_subject strips a [list tag] only when a Re:/Fwd: prefix is present, so the original
#    "[Support] Login problem" and the reply "Re: [Support] Login problem" normalise differently and a reply
#    without References never joins its thread by subject.
@pytest.mark.parametrize("original, reply", [
    ("[Support] Login problem", "Re: [Support] Login problem"),
    ("[Support] Login problem", "[Support] Re: Login problem"),
    ("[Ticket#123] Invoice missing", "AW: [Ticket#123] Invoice missing"),
], ids=["re-before-tag", "tag-before-re", "ticket-tag"])
def test_list_tag_reply_joins_its_thread_by_subject(original, reply):
    assert normalize_subject(original)[0] == normalize_subject(reply)[0]
    index = ThreadIndex()

    def take(message):
        thread = index.place(message)
        thread.messages.append(ThreadMessage(key=message.key, folder="INBOX", message_id=message.message_id,
                                             kind=Kind.CUSTOMER, sender=message.sender, arrived=message.arrived))
        index.add(thread)
        return thread

    def msg(mid, subject):
        return Message(key=mid, folder="INBOX", message_id=mid, parents=(), subject=subject,
                       sender="alice@customer.example", sender_name="", recipients=(), date=T0, arrived=T0)

    first = take(msg("<a@x>", original))
    assert take(msg("<b@x>", reply)) is first


# 2. parse: raw 8-bit UTF-8 in headers (RFC 6532; what most clients send today) comes out as U+FFFD.
def test_raw_utf8_headers_are_read_as_utf8():
    message = parse("From: Jörg Müller <joerg@customer.example>\r\nSubject: Grüße aus Köln\r\n\r\nx\r\n".encode())
    assert message.subject == "Grüße aus Köln"  # actual: 'Gr\ufffd\ufffd\ufffd\ufffde aus K\ufffd\ufffdln'
    assert message.sender_name == "Jörg Müller"  # actual: 'J\ufffd\ufffdrg M\ufffd\ufffdller'


# 3. parse: a damaged base64 encoded-word raises email.errors.HeaderParseError out of parse_message
#    (not even a ParseError), so the customer's message is quarantined instead of starting a clock.
@pytest.mark.parametrize("subject", [b"=?utf-8?B?SGVsb?=", b"=?utf-8?b?not-base64!?="], ids=["truncated", "junk"])
def test_damaged_base64_word_does_not_stop_parsing(subject):
    message = parse(b"From: alice@customer.example\r\nMessage-ID: <a@x>\r\nSubject: " + subject + b"\r\n\r\nx\r\n")
    assert message.sender == "alice@customer.example"


# 4. parse: the stand-in id for a message without Message-ID hashes From/Date/Subject/To and the byte LENGTH
#    only, so two different messages of the same length collide and the second is dropped as a duplicate.
def test_derived_message_id_differs_for_different_bodies_of_equal_length():
    head = b"From: form@shop.example\r\nTo: support@example.test\r\nSubject: Contact form\r\n\r\n"
    one, two = parse(head + b"Order 1111 is late\r\n"), parse(head + b"Order 2222 is late\r\n")
    assert one.message_id != two.message_id


# 5. classify: the subject heuristic alone turns ordinary customer mail into AUTO (never starts a clock).
@pytest.mark.parametrize("subject", [
    "Non-delivery of my order #1234",
    "Delivery failure for parcel 1234 - please help",
    "Auto reply not working in my mailbox",
    "Out of office hours support number?",
], ids=["non-delivery-of-order", "delivery-failure-parcel", "auto-reply-feature-question", "out-of-office-hours"])
def test_customer_subject_alone_does_not_make_mail_auto(subject):
    data = (f"From: Alice <alice@customer.example>\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
            "Message-ID: <a@customer.example>\r\nDate: Mon, 04 Mar 2024 09:00:00 +0000\r\n\r\nHello\r\n").encode()
    assert classify(parse(data), People(team=("*@example.test",))) is Kind.CUSTOMER


# 6. config: allow_insecure is not type-checked; the string "false" is truthy and ENABLES plain text to a remote host.
def test_allow_insecure_must_be_a_boolean(tmp_path):
    path = tmp_path / "mailesc.toml"
    path.write_text('[smtp]\nkind = "smtp"\nhost = "smtp.example.test"\nsecurity = "plain"\nallow_insecure = "false"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)  # actual: loads, with security = "plain" to smtp.example.test
    assert f"{path}: smtp.allow_insecure: " in str(caught.value)


# 7. store: when Store() fails on a damaged file it keeps its file lock while the exception is alive; reopening
#    after the file was repaired fails with a misleading "another mailesc process is using ...".
def test_failed_open_releases_the_lock(tmp_path):
    path = tmp_path / "mailesc.json"
    path.write_bytes(b"{damaged")
    with pytest.raises(StoreError) as caught:
        Store(path)
    path.unlink()  # the operator moved the damaged file aside (an empty file is refused too)
    Store(path).close()  # actual: StoreError "another mailesc process is using ..." while `caught` is alive
    assert caught.value
