"""classify() and auto_generated_reason(), on messages that go through the real parser."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import re

from mailesc.classify import People, SpamRules, auto_generated_reason, bounce_in_body, classify, spam_reason
from mailesc.model import Kind, RawMessage
from mailesc.parse import parse_message
from mailesc.signing import signed_marker

SECRET = bytes(range(32))
PEOPLE = People(team=("support@example.test", "*@example.test"), managers=("boss@elsewhere.example",),
                own_address="escalations@example.test", secret=SECRET)
OWN_MARKER = signed_marker(SECRET, "escalation; level=1; breach=1", "<a1@customer.example>")
SEEN = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)

CUSTOMER_HEADERS = (
    "From: Alice Customer <alice@customer.example>",
    "To: support@example.test",
    "Subject: Login problem",
    "Message-ID: <a1@customer.example>",
    "Date: Mon, 04 Mar 2024 09:00:00 +0000",
)
TEAM_REPLY_HEADERS = (
    "From: Bob Agent <bob@example.test>",
    "To: Alice Customer <alice@customer.example>",
    "Cc: support@example.test",
    "Subject: Re: Login problem",
    "Message-ID: <b1@example.test>",
    "In-Reply-To: <a1@customer.example>",
)


def parse(*headers: str):
    raw = ("\r\n".join(headers) + "\r\n\r\nHello,\r\nthe body does not matter here.\r\n").encode("utf-8")
    return parse_message(RawMessage(key="1", folder="INBOX", data=raw, arrived=None), SEEN)


def customer(*extra: str, subject: str | None = None):
    headers = [h for h in CUSTOMER_HEADERS if not (subject is not None and h.startswith("Subject:"))]
    if subject is not None:
        headers.append(f"Subject: {subject}")
    return parse(*headers, *extra)


def sender(address: str, subject: str = "Login problem"):
    return parse(f"From: {address}", "To: support@example.test", f"Subject: {subject}", "Message-ID: <s@x>")


# (id, message, expected Kind, a word the auto reason must contain or None)
CASES = [
    # -- people -------------------------------------------------------------------------------------------------
    ("customer", customer(), Kind.CUSTOMER, None),
    ("customer-mentions-office", customer(subject="My office printer is broken"), Kind.CUSTOMER, None),
    ("customer-mentions-office-manager", customer(subject="Office 365 login fails"), Kind.CUSTOMER, None),
    ("customer-reply-about-out-of-office", customer(subject="Re: out of office?"), Kind.CUSTOMER, None),
    ("customer-asks-about-vacation", customer(subject="Vacation plans: can I pause my plan?"), Kind.CUSTOMER, None),
    ("customer-return-path-normal", customer("Return-Path: <alice@customer.example>"), Kind.CUSTOMER, None),
    ("customer-precedence-first-class", customer("Precedence: first-class"), Kind.CUSTOMER, None),
    ("customer-precedence-bulky-is-not-bulk", customer("Precedence: bulky"), Kind.CUSTOMER, None),
    ("customer-inbox-rules-loop-alone", customer("X-MS-Exchange-Inbox-Rules-Loop: alice@customer.example"),
     Kind.CUSTOMER, None),
    ("customer-auto-response-suppress-alone", customer("X-Auto-Response-Suppress: All"), Kind.CUSTOMER, None),
    ("customer-subdomain-of-team-domain-is-not-team",
     parse("From: eve@mail.example.test.evil.example", "To: support@example.test", "Subject: Hi"),
     Kind.CUSTOMER, None),
    ("team-reply-to-customer", parse(*TEAM_REPLY_HEADERS), Kind.TEAM, None),
    ("team-reply-upper-case-address",
     parse("From: Bob <BOB@Example.TEST>", "To: alice@customer.example", "Subject: Re: Login problem"),
     Kind.TEAM, None),
    ("team-reply-customer-only-in-cc",
     parse("From: bob@example.test", "To: support@example.test", "Cc: alice@customer.example", "Subject: Re: x"),
     Kind.TEAM, None),
    ("team-forward-to-colleague-is-internal",
     parse("From: bob@example.test", "To: carol@example.test", "Subject: Fwd: Login problem"), Kind.INTERNAL, None),
    ("team-forward-to-manager-is-internal",
     parse("From: bob@example.test", "To: Boss <Boss@Elsewhere.example>", "Cc: support@example.test",
           "Subject: Fwd: Login problem"), Kind.INTERNAL, None),
    ("team-note-to-own-address-is-internal",
     parse("From: bob@example.test", "To: escalations@example.test", "Subject: Re: Escalation"), Kind.INTERNAL, None),
    ("manager-outside-the-team-answering-the-customer-is-a-response",
     parse("From: Boss <boss@elsewhere.example>", "To: alice@customer.example", "Subject: Re: Login problem"),
     Kind.TEAM, None),
    ("manager-answering-the-escalation-is-internal",
     parse("From: boss@elsewhere.example", "To: escalations@example.test", "Subject: Re: [SLA breach] x"),
     Kind.INTERNAL, None),
    # -- mailesc's own mail -------------------------------------------------------------------------------------
    ("own-signed-marker", customer(f"X-Mailesc: {OWN_MARKER}"), Kind.OWN, None),
    ("own-signed-marker-lower-case-name", customer(f"x-mailesc: {OWN_MARKER}"), Kind.OWN, None),
    ("own-address-without-header",
     parse("From: mailesc <Escalations@Example.TEST>", "To: boss@elsewhere.example", "Subject: Overdue"),
     Kind.OWN, None),
    ("own-address-with-an-old-unsigned-marker",
     parse("From: mailesc <escalations@example.test>", "To: boss@elsewhere.example", "X-Mailesc: escalation; "
           "level=1; breach=3"), Kind.OWN, None),
    ("own-signed-marker-wins-over-auto-submitted",
     customer(f"X-Mailesc: {OWN_MARKER}", "Auto-Submitted: auto-generated"), Kind.OWN, None),
    # Anybody can write the header; only mailesc can sign it for the message's own Message-ID.
    ("forged-unsigned-marker", customer("X-Mailesc: escalation; level=1; breach=1"), Kind.CUSTOMER, None),
    ("forged-marker-with-a-made-up-signature",
     customer("X-Mailesc: escalation; level=1; breach=1; sig=0123456789abcdef01234567"), Kind.CUSTOMER, None),
    ("forged-marker-signed-for-another-message-id",
     customer(f"X-Mailesc: {signed_marker(SECRET, 'escalation; level=1; breach=1', '<other@example.test>')}"),
     Kind.CUSTOMER, None),
    ("forged-marker-on-auto-mail-is-auto", customer("X-Mailesc: 1", "Auto-Submitted: auto-generated"),
     Kind.AUTO, "auto-submitted"),
    # -- RFC 3834 Auto-Submitted --------------------------------------------------------------------------------
    ("auto-submitted-auto-replied", customer("Auto-Submitted: auto-replied"), Kind.AUTO, "auto-submitted"),
    ("auto-submitted-auto-generated", customer("Auto-Submitted: auto-generated"), Kind.AUTO, "auto-submitted"),
    ("auto-submitted-auto-notified",
     customer("Auto-Submitted: auto-notified; owner-email=x@example.org"), Kind.AUTO, "auto-submitted"),
    ("auto-submitted-upper-case", customer("Auto-Submitted: AUTO-REPLIED"), Kind.AUTO, "auto-submitted"),
    ("auto-submitted-no", customer("Auto-Submitted: no"), Kind.CUSTOMER, None),
    ("auto-submitted-no-with-comment", customer("Auto-Submitted: no (sent by a person)"), Kind.CUSTOMER, None),
    ("auto-submitted-No-mixed-case", customer("Auto-Submitted: No"), Kind.CUSTOMER, None),
    # -- vendor auto-reply headers ------------------------------------------------------------------------------
    ("x-autoreply", customer("X-Autoreply: yes"), Kind.AUTO, "x-autoreply"),
    ("x-autorespond", customer("X-Autorespond: Login problem"), Kind.AUTO, "x-autorespond"),
    ("x-apple-action-vacation", customer("X-Apple-Action: VACATION"), Kind.AUTO, "x-apple-action"),
    # -- Precedence, lists --------------------------------------------------------------------------------------
    ("precedence-bulk", customer("Precedence: bulk"), Kind.AUTO, "precedence"),
    ("precedence-junk", customer("Precedence: junk"), Kind.AUTO, "precedence"),
    ("precedence-list", customer("Precedence: list"), Kind.AUTO, "precedence"),
    ("precedence-auto-reply", customer("Precedence: auto_reply"), Kind.AUTO, "precedence"),
    ("precedence-upper-case", customer("Precedence: BULK"), Kind.AUTO, "precedence"),
    ("list-id", customer("List-Id: Users of Example <users.lists.example.org>"), Kind.AUTO, "list-id"),
    # -- bounces and reports ------------------------------------------------------------------------------------
    ("multipart-report",
     customer('Content-Type: multipart/report; report-type=delivery-status; boundary="b"'), Kind.AUTO, "content-type"),
    ("multipart-report-mixed-case",
     customer('Content-Type: Multipart/Report; report-type=delivery-status; boundary="b"'), Kind.AUTO, "content-type"),
    ("multipart-mixed-is-not-a-report", customer('Content-Type: multipart/mixed; boundary="b"'), Kind.CUSTOMER, None),
    ("return-path-null", customer("Return-Path: <>"), Kind.AUTO, "return-path"),
    ("return-path-null-with-space", customer("Return-Path: < >"), Kind.AUTO, "return-path"),
    ("from-mailer-daemon",
     sender("Mail Delivery System <MAILER-DAEMON@mx.example.org>", "Mail delivery failed"), Kind.AUTO, "mailer-daemon"),
    ("from-mailer-daemon-neutral-subject", sender("MAILER-DAEMON@mx.example.org", "Hello"), Kind.AUTO, "mailer-daemon"),
    ("from-postmaster", sender("postmaster@mx.example.org", "Hello"), Kind.AUTO, "postmaster"),
    ("from-postmaster-upper-case", sender("Postmaster <POSTMASTER@mx.example.org>", "Hello"), Kind.AUTO, "postmaster"),
    # -- subjects -----------------------------------------------------------------------------------------------
    ("subject-automatic-reply", customer(subject="Automatic reply: Login problem"), Kind.AUTO, "subject"),
    ("subject-automatic-reply-encoded", customer(subject="=?utf-8?q?Automatic_reply:_Login_problem?="),
     Kind.AUTO, "subject"),
    ("subject-undeliverable", customer(subject="Undeliverable: Login problem"), Kind.AUTO, "subject"),
    ("subject-out-of-office", customer(subject="Out of Office: Login problem"), Kind.AUTO, "subject"),
    # -- auto beats team: a team autoresponder never stops the clock --------------------------------------------
    ("team-autoresponder-is-auto", parse(*TEAM_REPLY_HEADERS, "Auto-Submitted: auto-replied"), Kind.AUTO,
     "auto-submitted"),
    ("team-list-mail-is-auto", parse(*TEAM_REPLY_HEADERS, "Precedence: list"), Kind.AUTO, "precedence"),
]


@pytest.mark.parametrize("message, expected, reason_word", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(message, expected, reason_word):
    assert classify(message, PEOPLE) is expected
    reason = auto_generated_reason(message)
    if expected is Kind.AUTO:
        assert reason and reason_word in reason.lower(), reason  # the reason names the signal it saw
    elif expected is not Kind.OWN:
        assert reason is None


def test_auto_generated_reason_is_none_for_a_person():
    assert auto_generated_reason(customer()) is None
    assert auto_generated_reason(parse(*TEAM_REPLY_HEADERS)) is None


def test_the_same_message_is_auto_for_anybody():
    """Being auto-generated does not depend on who the team is."""
    message = customer("Auto-Submitted: auto-replied")
    assert classify(message, People(team=("*@customer.example",))) is Kind.AUTO
    assert classify(message, People(team=())) is Kind.AUTO


@pytest.mark.parametrize("team, expected", [
    (("support@example.test",), Kind.CUSTOMER),
    (("support@example.test", "bob@example.test"), Kind.TEAM),
    (("*@example.test",), Kind.TEAM),
    (("*@other.example",), Kind.CUSTOMER),
], ids=["bob-not-in-team", "bob-listed", "domain-wildcard", "other-domain-wildcard"])
def test_team_membership_decides_team_or_customer(team, expected):
    assert classify(parse(*TEAM_REPLY_HEADERS), People(team=team)) is expected



# -- spam -------------------------------------------------------------------------------------------------------

SITE_RULES = SpamRules(threshold=5.0, headers=(("X-Barracuda-Spam-Status", re.compile("^yes", re.I)),))
SPAM = [
    # (id, extra headers, rules (None: defaults), spam?, a word the reason must contain)
    ("spamassassin-flag", ("X-Spam-Flag: YES",), None, True, "x-spam-flag"),
    ("spamassassin-flag-lower-case", ("X-Spam-Flag: yes",), None, True, "x-spam-flag"),
    ("spamassassin-flag-no", ("X-Spam-Flag: NO",), None, False, None),
    ("spamassassin-status-yes", ("X-Spam-Status: Yes, score=7.1 required=5.0 tests=BAYES_99",), None, True,
     "x-spam-status"),
    ("spamassassin-status-no", ("X-Spam-Status: No, score=-0.1 required=5.0",), None, False, None),
    ("rspamd-milter-x-spam", ("X-Spam: Yes",), None, True, "x-spam"),
    ("rspamd-action-reject", ("X-Rspamd-Action: reject",), None, True, "x-rspamd-action"),
    ("rspamd-action-add-header", ("X-Rspamd-Action: add header",), None, True, "add header"),
    ("rspamd-action-rewrite-subject", ("X-Rspamd-Action: rewrite subject",), None, True, "rewrite subject"),
    ("rspamd-action-no-action", ("X-Rspamd-Action: no action",), None, False, None),
    ("rspamd-action-greylist", ("X-Rspamd-Action: greylist",), None, False, None),
    # Scores count only with a threshold the operator chose: the filter said "No" here.
    ("score-without-threshold", ("X-Spam-Level: *******", "X-Spam-Status: No, score=7.1 required=15.0"), None,
     False, None),
    ("level-stars-at-threshold", ("X-Spam-Level: *****",), SITE_RULES, True, "x-spam-level"),
    ("level-stars-below-threshold", ("X-Spam-Level: ****",), SITE_RULES, False, None),
    ("level-not-stars", ("X-Spam-Level: high",), SITE_RULES, False, None),
    ("score-header-above", ("X-Spam-Score: 12.5",), SITE_RULES, True, "x-spam-score"),
    ("score-header-negative", ("X-Spam-Score: -3.2",), SITE_RULES, False, None),
    ("status-score-above-threshold-though-filter-said-no", ("X-Spam-Status: No, score=7.1 required=15.0",),
     SITE_RULES, True, "score 7.1"),
    ("rspamd-score", ("X-Rspamd-Score: 9.02",), SITE_RULES, True, "x-rspamd-score"),
    ("site-header-matches", ("X-Barracuda-Spam-Status: Yes, SCORE=3.1",), SITE_RULES, True, "barracuda"),
    ("site-header-does-not-match", ("X-Barracuda-Spam-Status: No, SCORE=0.1",), SITE_RULES, False, None),
    ("no-spam-headers", (), SITE_RULES, False, None),
]


@pytest.mark.parametrize("headers, rules, is_spam, word", [c[1:] for c in SPAM], ids=[c[0] for c in SPAM])
def test_spam_verdicts(headers, rules, is_spam, word):
    message = customer(*headers)
    reason = spam_reason(message, rules)
    assert classify(message, PEOPLE, rules) is (Kind.SPAM if is_spam else Kind.CUSTOMER)
    if is_spam:
        assert word in reason.lower(), reason  # the reason names the header that decided
    else:
        assert reason is None


@pytest.mark.parametrize("message, expected", [
    (parse(*TEAM_REPLY_HEADERS, "X-Spam-Flag: YES"), Kind.SPAM),  # a forged team address never stops a clock
    (customer("X-Spam-Flag: YES", "Auto-Submitted: auto-generated"), Kind.SPAM),  # counted as spam, not auto
    (customer("X-Spam-Flag: YES", f"X-Mailesc: {OWN_MARKER}"), Kind.OWN),  # our own mail stays ours
], ids=["spam-from-a-team-address", "spam-that-is-also-auto", "own-mail-tagged-by-a-filter"])
def test_spam_beats_team_and_auto_but_not_own_mail(message, expected):
    assert classify(message, PEOPLE) is expected


# -- bounces by their structure ---------------------------------------------------------------------------------

def whole(headers: tuple[str, ...], body: str) -> tuple:
    """(Message, raw bytes) of a message with a real body."""
    raw = ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")
    return parse_message(RawMessage(key="1", folder="INBOX", data=raw, arrived=None), SEEN), raw


DSN_BODY = """--b\r
Content-Type: text/plain\r
\r
Your message could not be delivered.\r
--b\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.org\r
\r
Final-Recipient: rfc822; alice@customer.example\r
Action: failed\r
Status: 5.1.1\r
--b--\r
"""
POSTFIX_TEXT = ("This is the mail system at host mx.example.org.\r\n\r\nI'm sorry to have to inform you that "
                "your message could not\r\nbe delivered to one or more recipients.\r\n")
FORWARDED_BOUNCE = """--f\r
Content-Type: text/plain\r
\r
FYI, see below.\r
--f\r
Content-Type: message/rfc822\r
\r
From: MAILER-DAEMON@mx.example.org\r
Subject: Undelivered Mail Returned to Sender\r
Content-Type: text/plain\r
\r
This is the mail system at host mx.example.org.\r
--f--\r
"""
CUSTOMER_ABOUT_A_PARCEL = "Hello,\r\nmy delivery failed again: the parcel was returned to sender. Please help.\r\n"
BODIES = [
    # (id, headers, body, auto?, a word the reason must contain)
    ("dsn-part-behind-an-odd-subject", ("From: Mail Robot <robot@mx.example.org>", "Subject: Delivery report",
                                        'Content-Type: multipart/mixed; boundary="b"'), DSN_BODY, True,
     "message/delivery-status"),
    ("postfix-wording-subject-variant", ("From: robot@mx.example.org", "Subject: Undelivered mail (2 recipients)"),
     POSTFIX_TEXT, True, "mail system"),
    ("forwarded-bounce", ("From: relay@forwarder.example", "Subject: Fwd: Undelivered Mail Returned to Sender",
                          'Content-Type: multipart/mixed; boundary="f"'), FORWARDED_BOUNCE, True,
     "forwarded notice (from: mailer-daemon"),
    ("customer-about-a-failed-delivery", ("From: alice@customer.example", "Subject: Delivery failed again"),
     CUSTOMER_ABOUT_A_PARCEL, False, None),
    # No hint in the headers: the body is never read, whatever it says.
    ("no-hint-body-not-read", ("From: alice@customer.example", "Subject: Question"), POSTFIX_TEXT, False, None),
]


@pytest.mark.parametrize("headers, body, auto, word", [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_bounces_recognised_by_body_structure_only_where_headers_hint(headers, body, auto, word):
    message, raw = whole(headers + ("To: support@example.test", "Message-ID: <m@x>"), body)
    assert classify(message, PEOPLE) is Kind.CUSTOMER  # headers alone (IMAP hands over no body)
    assert classify(message, PEOPLE, data=raw) is (Kind.AUTO if auto else Kind.CUSTOMER)
    reason = auto_generated_reason(message, raw)
    assert (word in reason.lower()) if auto else reason is None, reason


def test_a_broken_body_is_no_evidence():
    assert bounce_in_body(b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n\x00\xff") is None


HEADER_VARIANTS = [
    # (id, From, Subject): bounce notices known by their headers alone
    ("mail-delivery-subsystem-name", "Mail Delivery Subsystem <robot@mx.example.org>", "Returned"),
    ("exchange-online-sender", "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@x.example>",
     "Hello"),
    ("exchange-german", "robot@mx.example.org", "Unzustellbar: Login problem"),
    ("exchange-french", "robot@mx.example.org", "Non remis : Login problem"),
    ("exchange-dutch", "robot@mx.example.org", "Onbestelbaar: Login problem"),
    ("exchange-spanish", "robot@mx.example.org", "No se puede entregar: Login problem"),
    ("delayed-still-retried", "robot@mx.example.org", "Delayed Mail (still being retried)"),
    ("sendmail-warning-delayed", "robot@mx.example.org", "Warning: message 1Abc-00 delayed 24 hours"),
    ("undeliverable-mail", "robot@mx.example.org", "Undeliverable mail"),
    ("dsn-plain", "robot@mx.example.org", "Delivery Status Notification"),
]


@pytest.mark.parametrize("sender_, subject", [v[1:] for v in HEADER_VARIANTS], ids=[v[0] for v in HEADER_VARIANTS])
def test_bounce_variants_known_by_headers(sender_, subject):
    assert classify(sender(sender_, subject), PEOPLE) is Kind.AUTO
