"""The outbox as the one send loop over queued mails of every kind, against a real aiosmtpd server: a storm of
escalations goes out as one digest that is itself a queued mail covering them, retried with the same
Message-ID and members after a 4xx; a daily digest goes through the very same loop."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import mailesc
from mailesc.compose import daily_message_id, escalation_mail_id
from mailesc.config import DailyDigestConfig, Secret, ServerConfig, SmtpConfig
from mailesc.daily import DailyDigest
from mailesc.model import Delivery, Kind, MailKind, QueuedMail, Thread, ThreadMessage
from mailesc.outbox import Outbox
from mailesc.render import Templates
from mailesc.store import Store
from mailesc.transports.smtp import SmtpTransport

SECRET = b"q" * 32
SENDER = "escalations@example.test"
NOW = datetime(2026, 12, 21, 12, 0, tzinfo=timezone.utc)
TEMPLATES = Templates(Path(mailesc.__file__).parent / "data" / "templates")


class NoMailbox:
    """A source that holds no message (the digest quotes none; an escalation says what it lacks)."""

    def fetch(self, keys):
        return {}


def _transport(sink) -> SmtpTransport:
    server = ServerConfig(host=sink.host, port=sink.port, security="plain", username="", password=Secret(),
                          timeout=10, ca_file=None)
    return SmtpTransport(SmtpConfig(kind="smtp", settings=server, from_address=SENDER, reply_to=""))


def _storm(store: Store, count: int) -> list[QueuedMail]:
    """`count` breaches, each with a level-1 escalation to the same manager, queued as the engine does."""
    mails = []
    for number in range(count):
        thread = Thread(id=f"<t{number}@customer.test>", subject="Broken", policy="standard",
                        due_at=NOW - timedelta(hours=1))
        thread.messages.append(ThreadMessage(key=f"k{number}", folder="INBOX", message_id=thread.id,
                                             kind=Kind.CUSTOMER, sender="ann@customer.test",
                                             arrived=NOW - timedelta(hours=5)))
        store.put_thread(thread)
        breach = store.new_breach(thread=thread.id, customer="ann@customer.test", subject="Broken",
                                  policy="standard", received_at=NOW - timedelta(hours=5),
                                  due_at=NOW - timedelta(hours=1))
        thread.breach_ids[0] = breach.id
        mail = QueuedMail(kind=MailKind.ESCALATION, level=1, at=NOW, to=["manager@example.test"],
                          template="escalation", message_id=escalation_mail_id(SECRET, thread, 0, 1, SENDER))
        store.enqueue(mail, thread=thread, breach=breach)
        mails.append(mail)
    store.flush()
    return mails


def test_a_storm_is_one_queued_digest_retried_with_the_same_id_and_members(tmp_path, smtp_sink):
    with Store(tmp_path / "mailesc.json") as store:
        members = _storm(store, 7)
        outbox = Outbox(store, NoMailbox(), _transport(smtp_sink), TEMPLATES, SENDER, secret=SECRET, digest_after=5)
        smtp_sink.fail_next(451, "try again later")
        first = outbox.deliver(NOW)
        assert (first.mails, first.waiting) == (0, 7)  # the digest counts as its escalations, not as an eighth
        [digest] = store.outgoing.values()
        assert (digest.kind, digest.delivery, digest.attempts, digest.covers) == (
            "digest", Delivery.PENDING, 1, [m.message_id for m in members])
        assert {m.digest for m in members} == {digest.message_id} and {m.attempts for m in members} == {1}
        assert digest.retry_at == members[0].retry_at > NOW

    with Store(tmp_path / "mailesc.json") as store:  # a restart: the queue is what the store holds
        outbox = Outbox(store, NoMailbox(), _transport(smtp_sink), TEMPLATES, SENDER, secret=SECRET, digest_after=5)
        assert outbox.deliver(NOW + timedelta(seconds=10)).mails == 0  # inside its retry pause
        second = outbox.deliver(NOW + timedelta(minutes=1))
        assert (second.mails, second.sent, second.waiting) == (1, 7, 0)
        [sent] = smtp_sink.wait_for(1)
        assert sent.message["Message-ID"] == digest.message_id and sent.rcpt_tos == ["manager@example.test"]
        assert sent.message["References"].split() == [m.message_id for m in members]
        assert sent.message["X-Mailesc"].startswith("digest; escalations=7")
        [record] = store.outgoing.values()
        assert (record.delivery, record.attempts) == (Delivery.SENT, 2)
        assert all(b.escalations[0].delivery is Delivery.SENT for b in store.breaches.values())
        assert store.pending_mails() == []


def test_few_escalations_go_alone_and_no_digest_is_queued(tmp_path, smtp_sink):
    with Store(tmp_path / "mailesc.json") as store:
        members = _storm(store, 2)
        delivered = Outbox(store, NoMailbox(), _transport(smtp_sink), TEMPLATES, SENDER, secret=SECRET,
                           digest_after=5).deliver(NOW)
        assert (delivered.mails, delivered.sent) == (2, 2)
        assert sorted(m.message["Message-ID"] for m in smtp_sink.wait_for(2)) == sorted(m.message_id for m in members)
        assert dict(store.outgoing) == {} and all(m.digest is None for m in members)


def test_the_daily_digest_goes_through_the_same_loop(tmp_path, smtp_sink):
    config = DailyDigestConfig(at=(NOW - timedelta(minutes=5)).time(), timezone=timezone.utc,
                               to=("boss@example.test",), template="daily")
    with Store(tmp_path / "mailesc.json") as store:
        daily = DailyDigest(config, store, TEMPLATES, _transport(smtp_sink), SENDER, timedelta(days=30))
        smtp_sink.fail_next(451, "try again later")
        daily.run(NOW)
        [queued] = store.installation.pending_mails()
        assert (queued.mail.kind, queued.mail.day, queued.mail.attempts) == ("daily", NOW.date().isoformat(), 1)
        assert daily.waiting() is not None and daily.due_at(NOW) == queued.mail.retry_at
        daily.run(queued.mail.retry_at)
        [sent] = smtp_sink.wait_for(1)
        assert sent.message["Message-ID"] == daily_message_id(date(2026, 12, 21), SENDER)
        assert sent.rcpt_tos == ["boss@example.test"] and sent.message["X-Mailesc"] == "daily-digest"
        assert daily.waiting() is None and store.installation.pending_mails() == []
        assert daily.due_at(NOW + timedelta(hours=1)).date() == NOW.date() + timedelta(days=1)  # once a day
