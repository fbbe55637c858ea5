"""The `webhook` notifier: its config tables, a level's `notify`, the post's text and JSON, what an answer
means, and posting to a real local HTTP server (mailesc.testing.WebhookServer)."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.app import load_setup
from mailesc.compose import webhook_payload, webhook_post_id, webhook_text
from mailesc.config import load_config
from mailesc.errors import ConfigError, PermanentTransportError, TemporaryTransportError
from mailesc.model import Breach, Thread, WebhookPost
from mailesc.notifiers.webhook import WebhookConfig, WebhookNotifier, connection_error, status_error, url_problems
from mailesc.policies import load_policies
from mailesc.testing import WebhookServer, free_port
from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, write_config

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
SECRET_URL = "https://hooks.example.test/services/T0/B0/SeCrEtToKeN"


def config_with(tmp_path: Path, webhook: str, rules: str = ONE_HOUR_RULE) -> Path:
    return write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=rules, extra=dedent(webhook))


def problems_of(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


# -- the config ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, key, says", [
    ("[webhook.ops]\nformat = \"slack\"\n", "webhook.ops.url_env", "needs url_env"),
    ("[webhook.ops]\nurl_env = \"A\"\nurl_file = \"/etc/x\"\n", "webhook.ops.url_env", "not both"),
    ("[webhook.ops]\nurl_evn = \"A\"\n", "webhook.ops.url_evn", "did you mean 'url_env'?"),
    (f"[webhook.ops]\nurl = \"{SECRET_URL}\"\n", "webhook.ops.url", "is not written in the config"),
    ("[webhook.ops]\nurl_env = \"A\"\nformat = \"discord\"\n", "webhook.ops.format", "must be one of slack, teams"),
    ("[webhook.ops]\nurl_env = \"A\"\ntimeout_seconds = 0\n", "webhook.ops.timeout_seconds", "at least 1"),
    ("[webhook.\"o p\"]\nurl_env = \"A\"\n", "webhook.o p", "letters, digits"),
    ("[webhook]\nops = \"x\"\n", "webhook.ops", "must be a table"),
])
def test_a_webhook_table_with_a_problem_is_refused_naming_file_key_and_problem(tmp_path, table, key, says):
    path = config_with(tmp_path, table)
    found = problems_of(path)
    assert any(file == str(path) and k == key and says in text for file, k, text in found), found
    assert not any(SECRET_URL in text or "SeCrEtToKeN" in text for _, _, text in found)


def test_a_webhook_table_is_read_with_its_defaults(tmp_path):
    config = load_config(config_with(tmp_path, """
        [webhook.ops]
        url_env = "MAILESC_OPS_WEBHOOK"
        [webhook.board]
        url_file = "secrets/board-webhook"
        format = "teams"
        timeout_seconds = 3
        """))
    ops, board = config.webhooks
    assert (ops.name, ops.url_env, ops.url_file, ops.format, ops.timeout) == ("ops", "MAILESC_OPS_WEBHOOK", None,
                                                                              "slack", 10.0)
    assert (board.name, board.url_file, board.format, board.timeout) == ("board", tmp_path / "secrets" /
                                                                         "board-webhook", "teams", 3.0)


@pytest.mark.parametrize("value, key, says", [
    (None, "webhook.ops.url_env", "environment variable MAILESC_TEST_HOOK is not set"),
    ("", "webhook.ops.url_env", "is empty"),
    ("hooks.example.test/x", "webhook.ops.url_env", "is not an https:// URL"),
    ("http://hooks.example.test/services/SeCrEtToKeN", "webhook.ops.url_env", "must start with https://"),
])
def test_a_webhook_url_that_cannot_be_used_is_a_problem_that_never_quotes_it(tmp_path, monkeypatch, value, key,
                                                                               says):
    if value is None:
        monkeypatch.delenv("MAILESC_TEST_HOOK", raising=False)
    else:
        monkeypatch.setenv("MAILESC_TEST_HOOK", value)
    found = url_problems((WebhookConfig("ops", url_env="MAILESC_TEST_HOOK", config_file=tmp_path / "m.toml"),))
    assert [(k, says in text) for _, k, text in found] == [(key, True)], found
    assert not any("SeCrEtToKeN" in text or "hooks.example.test" in text for _, _, text in found)


def test_a_url_file_must_be_private_and_loopback_http_is_allowed(tmp_path):
    file = tmp_path / "hook"
    file.write_text("http://127.0.0.1:9/hook\n")
    file.chmod(0o644)
    webhook = WebhookConfig("ops", url_file=file, config_file=tmp_path / "m.toml")
    assert [(k, "chmod 600" in text) for _, k, text in url_problems((webhook,))] == [("webhook.ops.url_file", True)]
    file.chmod(0o600)
    assert url_problems((webhook,)) == []
    assert webhook.url() == "http://127.0.0.1:9/hook"


# -- a level's notify ----------------------------------------------------------------------------------------

LEVEL = """
[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
notify = {notify}
"""


@pytest.mark.parametrize("notify, says", [
    ('"ops"', "a notifier is written KIND:NAME"),
    ('["mail:ops"]', "unknown notifier kind 'mail'"),
    ('["webhook:boss@example.test"]', "a notifier is written KIND:NAME"),
    ('["webhook:ops", "webhook:ops"]', "listed twice"),
    ("[1]", 'must list notifiers like ["webhook:ops"]'),
])
def test_a_levels_notify_that_is_not_kind_colon_name_is_a_policy_problem(tmp_path, notify, says):
    (tmp_path / "rules.toml").write_text(LEVEL.format(notify=notify))
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    assert [(key, says in text) for _, key, text in caught.value.problems] == [("escalate[1].notify", True)], \
        caught.value.problems


def test_a_level_naming_a_webhook_the_config_lacks_is_a_problem_of_policies_against_the_config(tmp_path):
    path = config_with(tmp_path, '[webhook.ops]\nurl_env = "MAILESC_OPS_WEBHOOK"\n',
                       rules=LEVEL.format(notify='["webhook:ops", "webhook:nosuch"]'))
    with pytest.raises(ConfigError) as caught:
        load_setup(load_config(path))
    assert [(file.endswith("rules.toml rule 1"), key) for file, key, _ in caught.value.problems] == [
        (True, "escalate[1].notify")]
    text = caught.value.problems[0][2]
    assert "no webhook is named 'nosuch'" in text and str(path) in text and "defined: ops" in text


def test_a_level_notifies_its_webhooks_beside_its_mail(tmp_path):
    path = config_with(tmp_path, '[webhook.ops]\nurl_env = "MAILESC_OPS_WEBHOOK"\n',
                       rules=LEVEL.format(notify='["webhook:ops"]'))
    level = load_setup(load_config(path)).policies.rules[0].escalate[0]
    assert (level.to, level.notify) == (("manager@example.test",), ("webhook:ops",))


# -- the post ------------------------------------------------------------------------------------------------


def breach(**values) -> Breach:
    return Breach(**{"id": 42, "thread": "<root@customer.example>", "customer": "alice@customer.example",
                     "subject": "Printer <on> fire & smoke", "policy": "gold", "received_at": T0,
                     "due_at": T0 + timedelta(hours=4), **values})


@pytest.mark.parametrize("values, now, has", [
    ({}, T0 + timedelta(hours=6, minutes=5), ["breach 42", "level 2", "policy gold", "no first response",
                                               '"Printer <on> fire & smoke"', "2h 05m after its deadline",
                                               "Mon 30 Nov 13:00 UTC", "mailesc breaches show 42"]),
    ({"clock": 1}, T0 + timedelta(hours=4), ["no next response", "0m after"]),
    ({"subject": "x" * 200}, T0 + timedelta(hours=5), ['"' + "x" * 79 + '…"']),
])
def test_the_post_text_says_which_breach_how_late_and_where_to_look_never_the_customers_address(values, now, has):
    text = webhook_text(breach(**values), 2, now, timezone.utc)
    for part in has:
        assert part in text
    assert "alice@customer.example" not in text and "customer.example" not in text


@pytest.mark.parametrize("fmt, expected", [
    ("slack", {"text": "a &lt;!channel&gt; &amp; b"}),
    ("teams", {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                    "version": "1.2", "body": [{"type": "TextBlock", "text": "a <!channel> & b", "wrap": True}]}}]}),
])
def test_the_payload_is_the_shape_each_chat_takes(fmt, expected):
    assert webhook_payload("a <!channel> & b", fmt) == expected


def test_a_posts_id_is_stable_for_its_level_and_webhook_and_differs_between_them():
    thread = Thread(id="<root@customer.example>", subject="s")
    first = webhook_post_id(b"k", thread, 0, 1, "webhook:ops", "esc@example.test")
    assert first == webhook_post_id(b"k", thread, 0, 1, "webhook:ops", "esc@example.test")
    assert len({first, webhook_post_id(b"k", thread, 0, 2, "webhook:ops", "esc@example.test"),
                webhook_post_id(b"k", thread, 0, 1, "webhook:board", "esc@example.test"),
                webhook_post_id(b"k", thread, 1, 1, "webhook:ops", "esc@example.test")}) == 4


# -- what an answer means ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, retry_after, kind, text, pause", [
    (200, None, None, None, None),
    (204, None, None, None, None),
    (429, "30", TemporaryTransportError, "the webhook ops answered HTTP 429", timedelta(seconds=30)),
    (429, "Wed, 21 Oct 2026 07:28:00 GMT", TemporaryTransportError, "HTTP 429", None),
    (503, "99999", TemporaryTransportError, "HTTP 503", timedelta(hours=1)),
    (500, None, TemporaryTransportError, "HTTP 500", None),
    (400, None, PermanentTransportError, "the webhook ops answered HTTP 400", None),
    (403, None, PermanentTransportError, "HTTP 403", None),
    (404, None, PermanentTransportError, "HTTP 404", None),
    (410, None, PermanentTransportError, "HTTP 410", None),
    (301, None, PermanentTransportError, "HTTP 301 (a webhook URL that redirects", None),
])
def test_an_answers_status_settles_the_post_like_an_smtp_reply(status, retry_after, kind, text, pause):
    error = status_error("ops", status, retry_after)
    if kind is None:
        assert error is None
        return
    assert type(error) is kind and text in str(error)
    assert getattr(error, "retry_after", None) == pause


@pytest.mark.parametrize("error, says", [
    (TimeoutError("timed out"), "did not answer within 10s"),
    (socket.timeout("timed out"), "did not answer within 10s"),
    (ConnectionRefusedError(111, "Connection refused"), "could not be reached: connection refused"),
    (socket.gaierror(-2, "Name or service not known"), "its host name could not be resolved"),
])
def test_a_post_without_an_answer_is_temporary_and_says_why_without_the_url(error, says):
    found = connection_error("ops", error, 10)
    assert isinstance(found, TemporaryTransportError) and says in str(found)


# -- posting to a real local server --------------------------------------------------------------------------


@pytest.fixture
def server():
    with WebhookServer() as running:
        yield running


def notifier_for(url: str, monkeypatch, fmt: str = "slack") -> WebhookNotifier:
    monkeypatch.setenv("MAILESC_TEST_HOOK", url)
    return WebhookNotifier((WebhookConfig("ops", url_env="MAILESC_TEST_HOOK", format=fmt, timeout=5),))


POST = WebhookPost(record_id="<p@x>", name="ops", text="breach 3 reached level 1", breach=3, level=1)


def test_a_post_reaches_the_server_as_json(server, monkeypatch):
    assert notifier_for(server.url, monkeypatch).post(POST) is None
    [request] = server.requests
    assert request.path == server.path and request.json == {"text": "breach 3 reached level 1"}
    assert request.headers["Content-Type"].startswith("application/json")


def test_a_teams_webhook_gets_the_adaptive_card(server, monkeypatch):
    assert notifier_for(server.url, monkeypatch, "teams").post(POST) is None
    assert server.requests[0].json["attachments"][0]["content"]["body"][0]["text"] == "breach 3 reached level 1"


@pytest.mark.parametrize("status, retry_after, kind", [
    (500, None, TemporaryTransportError), (429, "7", TemporaryTransportError), (400, None, PermanentTransportError),
])
def test_a_servers_refusal_is_classified_and_never_names_the_url(server, monkeypatch, status, retry_after, kind):
    server.fail_next(1, status, retry_after)
    error = notifier_for(server.url, monkeypatch).post(POST)
    assert type(error) is kind and f"HTTP {status}" in str(error)
    assert server.path not in str(error) and str(server.port) not in str(error)
    if retry_after:
        assert error.retry_after == timedelta(seconds=7)
    assert notifier_for(server.url, monkeypatch).post(POST) is None  # told to fail once only
    assert [r.status for r in server.requests] == [status, 200]


def test_a_server_that_is_not_there_is_a_temporary_failure(monkeypatch):
    port = free_port()
    error = notifier_for(f"http://127.0.0.1:{port}/hooks/SeCrEtToKeN", monkeypatch).post(POST)
    assert isinstance(error, TemporaryTransportError) and "could not be reached" in str(error)
    assert "SeCrEtToKeN" not in str(error) and str(port) not in str(error)


def test_a_webhook_no_longer_configured_fails_the_post_for_good(monkeypatch):
    error = WebhookNotifier(()).post(POST)
    assert isinstance(error, PermanentTransportError) and "no webhook named 'ops'" in str(error)


def test_check_names_the_webhooks_and_where_their_urls_are_never_the_urls(monkeypatch, server):
    said = json.dumps(notifier_for(server.url, monkeypatch).check())
    assert "ops" in said and "$MAILESC_TEST_HOOK" in said and server.url not in said
    assert os.environ["MAILESC_TEST_HOOK"] == server.url
