"""Escalation mails: sandboxed templates, escaped HTML, clean headers, originals attached intact."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone

import pytest

from mailesc.app import SAMPLE_CONTEXT
from mailesc.errors import ConfigError
from mailesc.render import Attachment, Templates, build_mail
from tests.support import TEMPLATES

NOW = datetime(2026, 10, 5, 14, 0, tzinfo=timezone.utc)


def render_and_build(context: dict, attachments=()) -> email.message.EmailMessage:
    subject, text, html = Templates(TEMPLATES).render("escalation", context)
    mail = build_mail(sender="Escalations <escalations@example.test>", to=["manager@example.test"], subject=subject,
                      text=text, html=html, message_id="<e1@example.test>", references=["<root@customer.example>"],
                      date=NOW, headers={"Auto-Submitted": "auto-generated"}, attachments=list(attachments))
    return email.message_from_bytes(mail.data, policy=email.policy.default)


@pytest.mark.parametrize("subject", [
    "Hello\r\nBcc: victim@example.org",
    "Hello\nBcc: victim@example.org",
    "Hello\x00\x1b[31m\x7f",
], ids=["crlf", "lf", "control-characters"])
def test_nothing_from_a_customer_subject_becomes_a_header(subject):
    message = render_and_build({**SAMPLE_CONTEXT, "subject": subject})
    assert message["Bcc"] is None
    assert all(ch >= " " for ch in message["Subject"])
    assert message["Subject"].startswith("[SLA breach, level 1] Hello")


def test_html_part_escapes_what_the_customer_wrote():
    message = render_and_build({**SAMPLE_CONTEXT, "customer_name": "<script>alert(1)</script>",
                                "excerpt": "<img src=x onerror=alert(1)>"})
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html
    text = message.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in text  # plain text is shown as written, not escaped


def test_the_text_names_customer_policy_times_and_level():
    text = render_and_build(SAMPLE_CONTEXT).get_body(("plain",)).get_content()
    for value in ("customer@example.com", "Pat Customer", "Cannot log in", "default", "2026-01-05T09:00:00+00:00",
                  "2026-01-05T13:00:00+00:00", "1h", "level 1", "Hello, I cannot log in."):
        assert value in text, value


def test_originals_are_attached_as_message_rfc822_in_order():
    first = b"From: a@customer.example\nSubject: first \xc3\xa4\nMessage-ID: <1@x>\n\nbody one\n"
    second = b"From: b@example.test\r\nSubject: second\r\nMessage-ID: <2@x>\r\n\r\nbody two\r\n"
    message = render_and_build(SAMPLE_CONTEXT, [Attachment("01-customer.eml", first), Attachment("02-team.eml", second)])
    parts = list(message.iter_attachments())
    assert [p.get_content_type() for p in parts] == ["message/rfc822", "message/rfc822"]
    assert [p.get_filename() for p in parts] == ["01-customer.eml", "02-team.eml"]
    assert [p.get_content()["Message-ID"] for p in parts] == ["<1@x>", "<2@x>"]
    assert parts[0].get_content()["Subject"] == "first ä"


def test_a_template_cannot_reach_python_internals(tmp_path):
    (tmp_path / "escalation.txt.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ConfigError, match="cannot be rendered"):
        Templates(tmp_path).check({"escalation"}, SAMPLE_CONTEXT)


@pytest.mark.parametrize("template, problem", [
    ("{% if %}", "line 1"),
    ("{{ no_such_variable }}", "no_such_variable"),
], ids=["syntax-error", "unknown-variable"])
def test_a_broken_template_is_a_config_error(tmp_path, template, problem):
    (tmp_path / "escalation.txt.j2").write_text(template)
    with pytest.raises(ConfigError, match=problem):
        Templates(tmp_path).check({"escalation"}, SAMPLE_CONTEXT)


def test_a_missing_template_is_named(tmp_path):
    with pytest.raises(ConfigError, match="template not found"):
        Templates(tmp_path).check({"escalation"}, SAMPLE_CONTEXT)
