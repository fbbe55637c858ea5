"""What managers read: header values made safe, well-formed references, human times, one duration format,
excerpts that keep paragraphs. Table-driven, pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailesc.humane import format_span, human_time
from mailesc.compose import body_excerpt
from mailesc.render import fold_ids, header_safe, usable_message_ids

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 21, 11, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, expected", [
    ("Plain subject", "Plain subject"),
    ("Hello\r\nBcc: victim@example.org", "Hello Bcc: victim@example.org"),
    ("Hello\nworld", "Hello world"),
    ("bare\rcarriage", "bare carriage"),
    ("nul\x00and escape\x1b[31m", "nul and escape [31m"),
    ("del\x7fchar", "del char"),
    ("c1\x85control", "c1 control"),
    ("line\u2028separator\u2029paragraph", "line separator paragraph"),
    ("lone \ud800 surrogate", "lone surrogate"),
    ("invoice \u202efdp.exe", "invoice fdp.exe"),
    ("  many    spaces\t\ttabs  ", "many spaces tabs"),
    ("Grüße aus Köln 🙂", "Grüße aus Köln 🙂"),
    ("A" * 500, "A" * 199 + "\u2026"),
], ids=["plain", "crlf", "lf", "cr", "nul-escape", "del", "c1", "unicode-separators", "lone-surrogate",
        "bidi-override", "spaces", "non-ascii-kept", "too-long"])
def test_header_values_are_one_safe_line(value, expected):
    assert header_safe(value) == expected


@pytest.mark.parametrize("ids, expected", [
    (["<a@x>", "<b@x>"], ["<a@x>", "<b@x>"]),
    (["<a@x>", "<a@x>"], ["<a@x>"]),
    (["<" * 5000], []),
    (["<" + "x" * 300 + "@y>"], []),
    (["<a b@x>", "<a\x00b@x>", "<ä@x>", "no-brackets@x", "<>"], []),
    (["<root@x>"] + [f"<r{n}@x>" for n in range(40)], ["<root@x>"] + [f"<r{n}@x>" for n in range(21, 40)]),
], ids=["well-formed", "repeats", "brackets-bomb", "too-long", "malformed", "root-and-newest-kept"])
def test_only_well_formed_message_ids_are_referenced(ids, expected):
    assert usable_message_ids(ids) == expected


def test_references_are_folded_between_ids_never_encoded():
    ids = [f"<{'x' * 60}.{n}@example.test>" for n in range(4)]
    folded = fold_ids(ids)
    assert folded.split() == ids and "=?" not in folded
    assert all(len(line) <= 998 for line in folded.split("\r\n"))
    assert folded.count("\r\n ") == 3


@pytest.mark.parametrize("when, zone, expected", [
    (datetime(2026, 12, 21, 10, 0, tzinfo=timezone.utc), BERLIN, "Mon 21 Dec 11:00 CET"),
    (datetime(2026, 7, 6, 10, 0, tzinfo=timezone.utc), BERLIN, "Mon 6 Jul 12:00 CEST"),
    (datetime(2026, 12, 21, 10, 0, tzinfo=timezone.utc), None, "Mon 21 Dec 10:00 UTC"),
    (datetime(2026, 12, 21, 10, 0, tzinfo=timezone.utc), ZoneInfo("Asia/Kolkata"), "Mon 21 Dec 15:30 IST"),
    (datetime(2026, 12, 21, 10, 0, tzinfo=timezone.utc), ZoneInfo("America/Sao_Paulo"), "Mon 21 Dec 07:00 UTC-0300"),
    (datetime(2025, 12, 31, 23, 30, tzinfo=timezone.utc), BERLIN, "Thu 1 Jan 00:30 CET"),  # this year in Berlin
    (datetime(2024, 2, 29, 9, 0, tzinfo=timezone.utc), None, "Thu 29 Feb 2024 09:00 UTC"),  # another year
    (datetime(1, 1, 1, 0, 0, tzinfo=timezone.utc), ZoneInfo("America/New_York"), "0001-01-01T00:00+00:00"),
], ids=["winter", "summer", "utc", "half-hour-zone", "offset-only-zone", "new-year-local", "other-year",
        "out-of-range"])
def test_times_in_mails_are_human_and_in_the_zone(when, zone, expected):
    now = datetime(2026, 1, 10, tzinfo=timezone.utc) if when.year == 2025 else NOW
    assert human_time(when, zone, now) == expected


@pytest.mark.parametrize("span, expected", [
    (timedelta(0), "0m"),
    (timedelta(seconds=59), "0m"),
    (timedelta(minutes=1), "1m"),
    (timedelta(minutes=45, seconds=30), "45m"),
    (timedelta(hours=2, minutes=5), "2h 05m"),
    (timedelta(hours=23, minutes=59, seconds=59), "23h 59m"),
    (timedelta(days=3, hours=2, minutes=5), "3d 02h 05m"),
    (timedelta(days=1), "1d 00h 00m"),
    (-timedelta(hours=1, minutes=1), "-1h 01m"),
], ids=["zero", "seconds", "minute", "minutes", "hours", "almost-a-day", "days", "one-day", "negative"])
def test_one_duration_format(span, expected):
    assert format_span(span) == expected


def _mail(body: str) -> bytes:
    return ("From: pat@customer.example\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + body.replace("\n", "\r\n")).encode()


@pytest.mark.parametrize("body, expected", [
    ("One line.", "One line."),
    ("Hello,\n\nthe export fails.\n\nThanks,\nPat", "Hello,\n\nthe export fails.\n\nThanks,\nPat"),
    ("First.\n\n\n\n\nSecond.", "First.\n\nSecond."),
    ("\n\n  \nStarts late.\n\n", "Starts late."),
    ("My answer.\n\n> quoted line\n> more\n\nBye", "My answer.\n\nBye"),
    ("Tab\there\x1b[1m", "Tab here [1m"),
], ids=["one-line", "paragraphs", "blank-runs", "leading-blank", "quotes-left-out", "controls"])
def test_excerpts_keep_paragraph_breaks(body, expected):
    assert body_excerpt(_mail(body))[0] == expected


def test_a_long_excerpt_is_cut_and_says_so():
    excerpt, _ = body_excerpt(_mail(("word " * 50 + "\n\n") * 10))
    assert excerpt.endswith(" ...") and len(excerpt) <= 604 and "\n\n" in excerpt


def _build(**overrides):
    from mailesc.render import build_mail
    args = dict(sender="Escalations <escalations@example.test>", to=["manager@example.test"], subject="s", text="t",
                html=None, message_id="<e1@example.test>", references=["<root@customer.example>"], date=NOW,
                headers={}, attachments=[])
    return build_mail(**{**args, **overrides})


@pytest.mark.parametrize("to, expected", [
    (["manager@example.test"], ("manager@example.test",)),
    (["Mia Manager <mia@example.test>", "o'brien@example.test"], ("mia@example.test", "o'brien@example.test")),
    (["ok@example.test", "=?utf-8?q?Evil=0D=0ABcc:_x@y?= <m@x.test>", "a b@x", "x@y z", "<<a@x>", "a@x>"],
     ("ok@example.test", "m@x.test")),  # only the address of a named entry is written
    (["ok@example.test", "ops@[192.0.2.1]"], ("ok@example.test", "ops@[192.0.2.1]")),
], ids=["plain", "named-and-apostrophe", "hostile-left-out", "domain-literal"])
def test_only_plain_recipient_addresses_are_written(to, expected):
    assert _build(to=to).recipients == expected


@pytest.mark.parametrize("overrides, problem", [
    ({"to": ["not an address"]}, "no recipient is a usable mail address"),
    ({"message_id": "<" * 5000}, "the mail's own Message-ID is not well formed"),
    ({"message_id": "no-brackets@example.test"}, "the mail's own Message-ID is not well formed"),
], ids=["no-recipient", "own-id-brackets", "own-id-malformed"])
def test_a_mail_that_cannot_exist_is_a_compose_error_without_the_data(overrides, problem):
    from mailesc.render import ComposeError
    with pytest.raises(ComposeError) as error:
        _build(**overrides)
    assert str(error.value) == problem


@pytest.mark.parametrize("original", [
    b"From: =?utf-8?q?Evil=0D=0ABcc=3A_x=40y?= <a@customer.example>\r\nMessage-ID: <" + b"<" * 900 + b">\r\n\r\nhi\r\n",
    b"From: a@customer.example\nSubject: \xff\xfe 8-bit\nReferences: " + b"<" * 500 + b"\n\nbody\n",
    b"From: a@customer.example\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all \xe4\r\n",
], ids=["encoded-crlf-and-brackets", "raw-8bit-and-bad-references", "multipart-without-boundary"])
def test_originals_with_hostile_headers_are_attached_byte_for_byte(original):
    import email
    import email.policy
    from mailesc.render import Attachment
    mail = _build(attachments=[Attachment("01-customer.eml", original)])
    parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
    [attached] = parsed.iter_attachments()
    assert attached.get_content_type() == "message/rfc822"
    assert original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") in mail.data
    assert parsed["Bcc"] is None
