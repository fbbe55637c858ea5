"""render keeps parsed and folded headers from mail to mail (a replay composes thousands of mails with mostly the
same headers): the mails are byte for byte what the stdlib's policy alone makes, the first time and every time
after, whatever the headers hold."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.policy import EmailPolicy

import pytest

from mailesc import render
from mailesc.render import Attachment, build_mail

NOW = datetime(2026, 10, 5, 14, 0, tzinfo=timezone.utc)
ORIGINAL = b"From: Pat <pat@customer.example>\r\nSubject: Help\r\nMessage-ID: <a@customer.example>\r\n\r\nHello\r\n"

MAILS = [
    dict(subject="Escalation: Login problem", to=["manager@example.test"], headers={}),
    dict(subject="Escalation: Login problem", to=["manager@example.test", "Boss <boss@example.test>"],
         headers={"Reply-To": "Support <support@example.test>"}),
    dict(subject="Eskalation: Grüße aus Köln " + "lang " * 30, to=["manager@example.test"],
         headers={"X-Mailesc": "escalation; level=2; breach=7; sig=" + "ab" * 40}),
    dict(subject="=?utf-8?q?encoded?= words and \u202e bidi", to=["manager@example.test"],
         headers={"X-Odd": "a\r\nBcc: victim@example.org", "Keywords": "x, y, z"}),
]


def compose(number: int, spec: dict) -> bytes:
    """The mail's bytes, its MIME boundaries (random each time) made the same."""
    return _BOUNDARY.sub(b"=BOUNDARY=", build_mail(sender="Escalations <escalations@example.test>", subject=spec["subject"], to=spec["to"],
                      text=f"Mail {number}\nGrüße\n", html="<p>Mail</p>" if number % 2 else None,
                      message_id=f"<e{number}@example.test>", references=["<root@customer.example>"], date=NOW,
                      headers={"Auto-Submitted": "auto-generated", **spec["headers"]},
                      attachments=[Attachment(f"{n:02d}-customer.eml", ORIGINAL) for n in range(1, 3)]).data)


_BOUNDARY = re.compile(rb"=+\d+==")


class _StdlibOnly(render._OutgoingPolicy):
    """The outgoing policy without the kept headers: every header parsed and folded anew."""

    def header_store_parse(self, name, value):
        if name.lower() in render._ID_HEADERS:
            return name, value
        return EmailPolicy.header_store_parse(self, name, value)

    def fold_binary(self, name, value):
        return EmailPolicy.fold_binary(self, name, value)


@pytest.fixture
def stdlib_mails(monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(render, "_OUTGOING", _StdlibOnly(linesep="\r\n", refold_source="none"))
        return [compose(number, spec) for number, spec in enumerate(MAILS)]


def test_mails_are_what_the_stdlib_alone_makes_first_and_again(stdlib_mails, monkeypatch):
    monkeypatch.setattr(render, "_STORED", {})
    monkeypatch.setattr(render, "_FOLDED", {})
    first = [compose(number, spec) for number, spec in enumerate(MAILS)]
    assert render._STORED and render._FOLDED  # the second round reads kept headers
    again = [compose(number, spec) for number, spec in enumerate(MAILS)]
    assert first == stdlib_mails and again == stdlib_mails


def test_a_full_store_starts_afresh_and_still_gives_the_same_mails(stdlib_mails, monkeypatch):
    monkeypatch.setattr(render, "_KEPT_AT_MOST", 3)
    monkeypatch.setattr(render, "_STORED", {})
    monkeypatch.setattr(render, "_FOLDED", {})
    for _ in range(2):
        assert [compose(number, spec) for number, spec in enumerate(MAILS)] == stdlib_mails
        assert len(render._STORED) <= 3 and len(render._FOLDED) <= 3



def _texts_around(boundary: str) -> list[bytes]:
    b = boundary.encode()
    return [b"", b"no boundary here\r\n", b"--" + b + b"\n", b"x\n--" + b + b"--\nmore", b"--" + b + b"\r\n",
            b"--" + b + b"x\n", b"text --" + b + b"\n", b"--" + b + b"\n--" + b + b".0\n", None]


def test_the_boundary_is_the_one_the_stdlib_would_choose():
    """The same random draw, and a boundary whose line is in the text is passed over exactly as the stdlib's
    BytesGenerator does ("B.0", "B.1", ...), whatever the text."""
    import random
    from email.generator import BytesGenerator

    random.seed(13)
    drawn = BytesGenerator._make_boundary()
    for text in _texts_around(drawn):
        random.seed(13)
        ours = render._OwnPolicyGenerator._make_boundary(text)
        random.seed(13)
        assert ours == BytesGenerator._make_boundary(text), text


@pytest.mark.parametrize("seed", [1, 7, 13, 2026, 99999])
def test_mails_with_drawn_boundaries_are_byte_for_byte_the_stdlibs(seed, monkeypatch):
    """The same random draws give the very same bytes, boundaries included, with the drawn boundaries'
    Content-Type headers made from a kept one (and with the stdlib parsing and folding each anew)."""
    import random

    def mails():
        random.seed(seed)
        return [build_mail(sender="Escalations <escalations@example.test>", subject=spec["subject"], to=spec["to"],
                           text=f"Mail {number}\nGrüße\n", html="<p>Mail</p>" if number % 2 else None,
                           message_id=f"<e{number}@example.test>", references=["<root@customer.example>"], date=NOW,
                           headers={"Auto-Submitted": "auto-generated", **spec["headers"]},
                           attachments=[Attachment(f"{n:02d}-customer.eml", ORIGINAL)
                                        for n in range(number % 3)]).data
                for number, spec in enumerate(MAILS * 2)]

    with monkeypatch.context() as patched:
        patched.setattr(render, "_OUTGOING", _StdlibOnly(linesep="\r\n", refold_source="none"))
        expected = mails()
    monkeypatch.setattr(render, "_STORED", {})
    monkeypatch.setattr(render, "_FOLDED", {})
    assert mails() == expected
    assert mails() == expected  # with the model headers kept
    assert sum(b"multipart/" in mail for mail in expected) >= 6  # the case is about drawn boundaries


@pytest.mark.parametrize("value", [
    'multipart/mixed; boundary="===============1234567890123456789=="',
    'multipart/alternative; boundary="===============0000000000000000042=="',
    'multipart/alternative; boundary="===============9999999999999999999=="',
    'multipart/mixed; boundary="===============12=="',
])
def test_a_drawn_boundary_header_is_the_stdlibs_header(value):
    from email.message import EmailMessage

    ours = render._OUTGOING.header_store_parse("Content-Type", value)[1]
    stdlib = EmailPolicy.header_store_parse(render._OUTGOING, "Content-Type", value)[1]
    assert hasattr(ours, "_model")  # the kept road, not a parse
    assert (str(ours), ours.name, dict(ours.params), ours.content_type, ours.defects) == (
        str(stdlib), stdlib.name, dict(stdlib.params), stdlib.content_type, stdlib.defects)
    assert render._OUTGOING.fold_binary("Content-Type", ours) == EmailPolicy.fold_binary(
        render._OUTGOING, "Content-Type", stdlib)
    assert ours.fold(policy=render._OUTGOING) == stdlib.fold(policy=render._OUTGOING)
    mail = EmailMessage(policy=render._OUTGOING)
    mail["Content-Type"] = value
    assert mail.get_boundary() == stdlib.params["boundary"]


def test_a_boundary_that_is_not_a_drawn_one_takes_the_stdlibs_road():
    for value in ('multipart/mixed; boundary="===============1234567890123456789==.0"',
                  'multipart/mixed; boundary="own-boundary"', 'text/plain; charset="utf-8"'):
        assert not hasattr(render._OUTGOING.header_store_parse("Content-Type", value)[1], "_model")
