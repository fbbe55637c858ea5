"""parse_message: raw bytes -> Message, from the headers alone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.errors import ParseError
from mailesc.model import RawMessage
from mailesc.headertext import clean, decode
from mailesc.parse import addresses, parse_message
from tests.support import CORPORA

SEEN = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def raw(*headers: str | bytes, body: bytes = b"Hello\r\n", arrived: datetime | None = None, key: str = "1"):
    lines = [h if isinstance(h, bytes) else h.encode("ascii") for h in headers]
    return RawMessage(key=key, folder="INBOX", data=b"\r\n".join(lines) + b"\r\n\r\n" + body, arrived=arrived)


def parse(*headers, **kwargs):
    return parse_message(raw(*headers, **kwargs), SEEN)


BASE = ("From: Alice <alice@customer.example>", "To: support@example.test", "Subject: Login problem",
        "Date: Mon, 04 Mar 2024 09:00:00 +0000")


def test_the_basic_facts_of_a_message():
    message = parse(*BASE, "Message-ID: <a1@customer.example>", "Cc: Bob <BOB@Example.TEST>",
                    arrived=SEEN - timedelta(hours=1), key="INBOX/17")
    assert message.key == "INBOX/17" and message.folder == "INBOX"
    assert message.message_id == "<a1@customer.example>"
    assert message.subject == "Login problem"
    assert (message.sender, message.sender_name) == ("alice@customer.example", "Alice")
    assert message.recipients == ("support@example.test", "bob@example.test")
    assert message.header("SUBJECT") == "Login problem"
    assert message.parents == ()


# -- Message-ID -------------------------------------------------------------------------------------------------

MESSAGE_IDS = [
    ("plain", "Message-ID: <a1@customer.example>", "<a1@customer.example>"),
    ("case-kept", "Message-ID: <ID.X@Host.Example>", "<ID.X@Host.Example>"),
    ("surrounding-spaces", "Message-ID:    <a1@customer.example>   ", "<a1@customer.example>"),
    ("header-name-any-case", "MESSAGE-ID: <a1@customer.example>", "<a1@customer.example>"),
    ("comment-after-id", "Message-ID: <a1@customer.example> (added by relay)", "<a1@customer.example>"),
]


@pytest.mark.parametrize("header, expected", [m[1:] for m in MESSAGE_IDS], ids=[m[0] for m in MESSAGE_IDS])
def test_message_id(header, expected):
    assert parse(*BASE, header).message_id == expected


@pytest.mark.parametrize("header", [None, "Message-ID:", "Message-ID: no-angle-brackets@host"],
                         ids=["missing", "empty", "without-brackets"])
def test_missing_message_id_gives_a_stable_derived_id(header):
    headers = BASE + ((header,) if header else ())
    first, again = parse(*headers), parse(*headers)
    assert re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", first.message_id)
    assert first.message_id == again.message_id  # the same bytes, read again on the next poll


DIFFERENT = [
    ("other-sender", ("From: Bob <bob@customer.example>",) + BASE[1:]),
    ("other-subject", BASE[:2] + ("Subject: Password reset",) + BASE[3:]),
    ("other-date", BASE[:3] + ("Date: Mon, 04 Mar 2024 09:00:01 +0000",)),
    ("other-recipient", BASE[:1] + ("To: sales@example.test",) + BASE[2:]),
]


@pytest.mark.parametrize("headers", [d[1] for d in DIFFERENT], ids=[d[0] for d in DIFFERENT])
def test_different_messages_without_message_id_get_different_ids(headers):
    assert parse(*BASE).message_id != parse(*headers).message_id


def test_different_bodies_of_different_length_get_different_ids():
    assert parse(*BASE, body=b"Hello\r\n").message_id != parse(*BASE, body=b"Hello again\r\n").message_id


# -- References and In-Reply-To ---------------------------------------------------------------------------------

PARENTS = [
    ("none", (), ()),
    ("in-reply-to-only", ("In-Reply-To: <p@x>",), ("<p@x>",)),
    ("references-only", ("References: <r1@x> <r2@x>",), ("<r1@x>", "<r2@x>")),
    ("references-then-in-reply-to", ("References: <r1@x> <r2@x>", "In-Reply-To: <r3@x>"),
     ("<r1@x>", "<r2@x>", "<r3@x>")),
    ("in-reply-to-written-first", ("In-Reply-To: <r3@x>", "References: <r1@x> <r2@x>"),
     ("<r1@x>", "<r2@x>", "<r3@x>")),
    ("in-reply-to-repeats-last-reference", ("References: <r1@x> <r2@x>", "In-Reply-To: <r2@x>"),
     ("<r1@x>", "<r2@x>")),
    ("duplicate-inside-references", ("References: <r1@x> <r2@x> <r1@x>",), ("<r1@x>", "<r2@x>")),
    ("folded-references", ("References: <r1@x>\r\n\t<r2@x>\r\n <r3@x>",), ("<r1@x>", "<r2@x>", "<r3@x>")),
    ("references-without-spaces", ("References: <r1@x><r2@x>",), ("<r1@x>", "<r2@x>")),
    ("two-references-headers", ("References: <r1@x>", "References: <r2@x>"), ("<r1@x>", "<r2@x>")),
    ("in-reply-to-with-phrase", ("In-Reply-To: Your message of Monday <p@x>",), ("<p@x>",)),
    ("garbage-in-reply-to", ("In-Reply-To: not a message id",), ()),
]


@pytest.mark.parametrize("headers, expected", [p[1:] for p in PARENTS], ids=[p[0] for p in PARENTS])
def test_parents(headers, expected):
    assert parse(*BASE, "Message-ID: <m@x>", *headers).parents == expected


# -- decoding ---------------------------------------------------------------------------------------------------

SUBJECTS = [
    ("ascii", b"Subject: Login problem", "Login problem"),
    ("q-utf8", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
    ("b-utf8", b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", "Grüße aus Köln"),
    ("q-latin1", b"Subject: =?iso-8859-1?q?Gr=FC=DFe?=", "Grüße"),
    ("mixed-words-and-text", b"Subject: Re: =?utf-8?q?L=C3=B6sung?= gefunden", "Re: Lösung gefunden"),
    ("adjacent-words-joined", b"Subject: =?utf-8?q?caf=C3=A9?=\r\n =?utf-8?q?_cr=C3=A8me?=", "café crème"),
    ("iso-2022-jp", b"Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
    ("gb2312", b"Subject: =?gb2312?b?xOO6ww==?=", "你好"),
    ("unknown-charset-read-as-utf8", b"Subject: =?x-unknown-cs?q?caf=C3=A9?=", "café"),
    ("folded", b"Subject: Login\r\n problem", "Login problem"),
    ("tab-folded", b"Subject: Login\r\n\tproblem", "Login problem"),
]


@pytest.mark.parametrize("header, expected", [s[1:] for s in SUBJECTS], ids=[s[0] for s in SUBJECTS])
def test_subject_decoding(header, expected):
    message = parse("From: alice@customer.example", header)
    assert message.subject == expected
    assert message.header("subject") == expected


@pytest.mark.parametrize("header", [
    b"Subject: =?utf-8?q?broken=FF=FE?=",
    b"Subject: caf\xe9 (raw latin-1)",
    b"Subject: =?utf-8?q?unterminated",
], ids=["invalid-utf8-in-word", "raw-latin1", "unterminated-word"])
def test_undecodable_subjects_never_raise_and_stay_encodable(header):
    message = parse("From: alice@customer.example", header)
    message.subject.encode("utf-8")  # no lone surrogates left over from undecodable bytes
    assert not CONTROL.search(message.subject)


SMUGGLED = [
    ("q-crlf", b"Subject: =?utf-8?q?Hello=0D=0ABcc:_x@y?="),
    ("b-crlf", b"Subject: =?utf-8?b?SGVsbG8NCkJjYzogeEB5?="),
    ("q-lf", b"Subject: =?utf-8?q?Hello=0ABcc:_x@y?="),
    ("q-nul-tab-del", b"Subject: =?utf-8?q?Hello=00=09=7FBcc:_x@y?="),
]


@pytest.mark.parametrize("header", [s[1] for s in SMUGGLED], ids=[s[0] for s in SMUGGLED])
def test_encoded_control_characters_never_reach_the_subject(header):
    message = parse("From: alice@customer.example", header)
    assert not CONTROL.search(message.subject), repr(message.subject)
    assert message.subject.startswith("Hello") and "Bcc: x@y" in message.subject  # the text itself is kept
    assert not any(CONTROL.search(value) for name, _ in message.headers for value in message.header_values(name))


DISPLAY_NAMES = [
    ("plain", b"From: Alice Customer <alice@customer.example>", "Alice Customer", "alice@customer.example"),
    ("quoted-with-comma", b'From: "Customer, Alice" <alice@customer.example>', "Customer, Alice",
     "alice@customer.example"),
    ("q-latin1", b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <Joerg@Example.ORG>", "Jörg Müller", "joerg@example.org"),
    ("q-utf8-with-encoded-comma", b"From: =?utf-8?q?M=C3=BCller=2C_J=C3=B6rg?= <j@customer.example>",
     "Müller, Jörg", "j@customer.example"),
    ("b-utf8-japanese", b"From: =?utf-8?b?44Gq44GL?= <nakamura@example.jp>", "なか", "nakamura@example.jp"),
    ("encoded-crlf", b"From: =?utf-8?q?Alice=0D=0ABcc=3A_x=40y?= <alice@customer.example>", "Alice Bcc: x@y",
     "alice@customer.example"),
    ("no-display-name", b"From: alice@customer.example", "", "alice@customer.example"),
    ("angle-only", b"From: <ALICE@Customer.Example>", "", "alice@customer.example"),
]


@pytest.mark.parametrize("header, name, address", [d[1:] for d in DISPLAY_NAMES], ids=[d[0] for d in DISPLAY_NAMES])
def test_sender_display_name_and_address(header, name, address):
    message = parse(header, b"Subject: x")
    assert (message.sender_name, message.sender) == (name, address)


def test_recipients_are_to_then_cc_lower_case_and_skip_junk():
    message = parse("From: a@customer.example", "To: A <A@X.example>, b@y.example",
                    'Cc: "C, D" <c@z.example>, undisclosed-recipients:;, not-an-address')
    assert message.recipients == ("a@x.example", "b@y.example", "c@z.example")


# -- dates and arrival ------------------------------------------------------------------------------------------

DATES = [
    ("utc", "Date: Mon, 04 Mar 2024 09:00:00 +0000", datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)),
    ("offset", "Date: Mon, 04 Mar 2024 09:00:00 +0200", datetime(2024, 3, 4, 7, 0, tzinfo=timezone.utc)),
    ("minus-zero-means-utc", "Date: Mon, 04 Mar 2024 09:00:00 -0000", datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)),
    ("no-timezone", "Date: Mon, 04 Mar 2024 09:00:00", datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)),
    ("obsolete-zone-name", "Date: 4 Mar 2024 09:00 EST", datetime(2024, 3, 4, 14, 0, tzinfo=timezone.utc)),
    ("no-weekday-two-digit-year", "Date: 4 Mar 24 09:00:00 +0000", datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)),
]


@pytest.mark.parametrize("header, expected", [d[1:] for d in DATES], ids=[d[0] for d in DATES])
def test_date_is_always_aware(header, expected):
    message = parse("From: a@customer.example", header)
    assert message.date is not None and message.date.utcoffset() is not None
    assert message.date == expected
    # No arrival time from the source: the Date is the best guess, unless it lies after the moment mailesc
    # saw the message (14:00 EST-converted is after SEEN, 12:00): then that moment is.
    assert message.arrived == min(expected, SEEN)


def test_a_date_in_the_future_does_not_become_the_arrival_time():
    message = parse("From: a@customer.example", "Date: Mon, 4 Mar 2030 09:00:00 +0000")
    assert message.date == datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)
    assert message.arrived == SEEN  # a clock running ahead must not push the deadline years away


@pytest.mark.parametrize("header", ["Date: yesterday", "Date: Mon, 31 Feb 2024 09:00:00 +0000", "Date:",
                                    "Date: 99999999999", None],
                         ids=["words", "february-31", "empty", "number", "missing"])
def test_unparseable_or_missing_date_falls_back_to_seen_at(header):
    message = parse("From: a@customer.example", *([header] if header else []))
    assert message.date is None
    assert message.arrived == SEEN


def test_source_arrival_time_wins_over_date():
    arrived = datetime(2024, 3, 4, 10, 30, tzinfo=timezone.utc)
    message = parse(*BASE, arrived=arrived)
    assert message.arrived == arrived
    assert message.date == datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


# -- line endings and bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
def test_line_endings(newline):
    data = newline.join([b"From: alice@customer.example", b"Subject: Login problem", b"Message-ID: <m@x>", b"",
                         b"body"])
    message = parse_message(RawMessage("1", "INBOX", data, None), SEEN)
    assert (message.sender, message.subject, message.message_id) == ("alice@customer.example", "Login problem",
                                                                    "<m@x>")


@pytest.mark.parametrize("data", [b"", b"   ", b"\r\n\r\n", b"\n"], ids=["empty", "spaces", "blank-lines", "newline"])
def test_empty_input_raises_parse_error(data):
    with pytest.raises(ParseError):
        parse_message(RawMessage("1", "INBOX", data, None), SEEN)


def test_text_without_any_header_raises_parse_error():
    with pytest.raises(ParseError):
        parse_message(RawMessage("1", "INBOX", b"just some words, no header at all\r\n", None), SEEN)


ADDRESS_FORMS = [
    "pat@customer.example",
    "Pat Customer <pat@customer.example>",
    "  Pat   Customer\r\n\t <Pat@Customer.Example>  ",
    "=?utf-8?q?J=C3=BCrgen?= <j@x.example>",
    "a@x.example, B <b@x.example>,c@x.example",
    "a@x.example,, ,b@x.example",
    '"Customer, Pat" <pat@customer.example>',        # quoted: the library's job
    "pat@customer.example (Pat Customer)",            # comment
    "undisclosed-recipients:;",                       # group
    "Pat <pat@customer.example",                      # broken
    "no address here",
    "<pat@customer.example>",
    "pat@@customer.example",
    "Pat <a@x.example> <b@x.example>",
]


@pytest.mark.parametrize("value", ADDRESS_FORMS)
def test_the_address_fast_path_reads_what_getaddresses_reads(value):
    from email.utils import getaddresses

    from mailesc.parse import _plain_addresses

    fast = _plain_addresses([value])
    if fast is not None:
        assert [p for p in fast if "@" in p[1]] == [p for p in getaddresses([value]) if "@" in p[1]]
    assert addresses([value]) == [(clean(decode(n)), a.strip().lower()) for n, a in getaddresses([value])
                                  if "@" in a]


def test_the_address_fast_path_agrees_with_getaddresses_on_the_corpora():
    from email.parser import BytesHeaderParser
    from email.policy import compat32
    from email.utils import getaddresses

    from mailesc.parse import _plain_addresses

    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")
    parser, checked = BytesHeaderParser(policy=compat32), 0
    for path in (p for p in CORPORA.rglob("*") if p.is_file()):
        headers = parser.parsebytes(path.read_bytes())
        for value in (str(v) for name in ("from", "to", "cc", "reply-to") for v in headers.get_all(name) or []):
            fast = _plain_addresses([value])
            if fast is not None:
                checked += 1
                assert [p for p in fast if "@" in p[1]] == [p for p in getaddresses([value]) if "@" in p[1]], value
    assert checked > 100


LINE_ENDINGS = [
    # (id, line break between the lines, optional break of one line that differs)
    ("lf", b"\n", None),
    ("crlf", b"\r\n", None),
    ("bare-cr", b"\r", None),
    ("cr-cr-lf-converted-twice", b"\r\r\n", None),
    ("lf-cr-reversed", b"\n\r", None),
    ("crlf-with-one-bare-lf", b"\r\n", b"\n"),
    ("crlf-with-one-bare-cr", b"\r\n", b"\r"),
    ("lf-with-one-crlf", b"\n", b"\r\n"),
    ("cr-with-one-cr-cr-lf", b"\r", b"\r\r\n"),
]


@pytest.mark.parametrize("newline, odd", [e[1:] for e in LINE_ENDINGS], ids=[e[0] for e in LINE_ENDINGS])
def test_every_header_is_read_whatever_the_line_endings(newline, odd):
    lines = [b"From: Alice <alice@customer.example>", b"To: support@example.test", b"Subject: Login problem",
             b"Message-ID: <le@customer.example>", b"In-Reply-To: <parent@example.test>",
             b"Date: Mon, 04 Mar 2024 09:00:00 +0000", b"", b"Hello,", b"please help.", b""]
    data = newline.join(lines[:2]) + (odd or newline) + newline.join(lines[2:])
    message = parse_message(RawMessage(key="1", folder="INBOX", data=data, arrived=None), SEEN)
    assert (message.sender, message.recipients, message.subject) == (
        "alice@customer.example", ("support@example.test",), "Login problem")
    assert (message.message_id, message.parents) == ("<le@customer.example>", ("<parent@example.test>",))
    assert message.date == datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r", b"\r\r\n"], ids=["lf", "crlf", "cr", "cr-cr-lf"])
def test_a_message_without_message_id_gets_the_same_derived_id_whatever_its_line_endings(newline):
    lines = [b"From: alice@customer.example", b"Subject: Login problem", b"", b"Hello", b""]
    derived = parse_message(RawMessage(key="1", folder="INBOX", data=b"\n".join(lines), arrived=None), SEEN)
    other = parse_message(RawMessage(key="1", folder="INBOX", data=newline.join(lines), arrived=None), SEEN)
    assert other.message_id == derived.message_id
