"""`check` and `policies check` with webhooks: a URL that cannot be used, a level naming a webhook the config
lacks, and a webhook named in the rule's (early warning) notify are refused with exit 78, naming file and key,
never the URL; `check` lists the webhooks by name."""

from __future__ import annotations

import pytest

from mailesc.cli import main
from tests.support import MAILDIR, OUTBOX, write_config

TOKEN = "SeCrEtToKeN"
LEVEL = """
[[rule]]
name = "standard"
first_response = "1h"
{rule_extra}
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
notify = ["webhook:{name}"]
"""


def config_for(tmp_path, name="ops", rule_extra=""):
    return write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX,
                        rules=LEVEL.format(name=name, rule_extra=rule_extra),
                        extra='[webhook.ops]\nurl_env = "MAILESC_OPS_WEBHOOK"\n')


@pytest.mark.parametrize("url, says", [
    (None, "webhook.ops.url_env: environment variable MAILESC_OPS_WEBHOOK is not set"),
    (f"http://chat.example.test/hooks/{TOKEN}", "webhook.ops.url_env: the URL in environment variable "
                                                 "MAILESC_OPS_WEBHOOK must start with https://"),
])
def test_check_refuses_a_webhook_url_it_cannot_use_without_printing_it(tmp_path, monkeypatch, capsys, url, says):
    if url is None:
        monkeypatch.delenv("MAILESC_OPS_WEBHOOK", raising=False)
    else:
        monkeypatch.setenv("MAILESC_OPS_WEBHOOK", url)
    config = config_for(tmp_path)
    assert main(["-c", str(config), "check", "--offline"]) == 78
    said = capsys.readouterr()
    assert says in said.err and str(config) in said.err
    assert TOKEN not in said.out + said.err and "chat.example.test" not in said.out + said.err
    assert main(["-c", str(config), "once"]) == 78  # and at start, before anything is read or sent
    assert TOKEN not in capsys.readouterr().err


def test_check_lists_the_webhooks_by_name_never_their_urls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_OPS_WEBHOOK", f"https://chat.example.test/hooks/{TOKEN}")
    assert main(["-c", str(config_for(tmp_path)), "check", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "webhooks   ops: slack, URL from $MAILESC_OPS_WEBHOOK (nothing posted)" in out and TOKEN not in out


@pytest.mark.parametrize("command", [["check", "--offline"], ["policies", "check"]])
def test_a_level_naming_an_unknown_webhook_is_refused_with_file_and_key(tmp_path, monkeypatch, capsys, command):
    monkeypatch.setenv("MAILESC_OPS_WEBHOOK", f"https://chat.example.test/hooks/{TOKEN}")
    config = config_for(tmp_path, name="nosuch")
    assert main(["-c", str(config), *command]) == 78
    err = capsys.readouterr().err
    assert "rules.toml rule 1" in err and "escalate[1].notify" in err and "no webhook is named 'nosuch'" in err
    assert "defined: ops" in err and "Traceback" not in err


def test_a_webhook_in_the_rules_warning_notify_says_where_it_belongs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_OPS_WEBHOOK", f"https://chat.example.test/hooks/{TOKEN}")
    config = config_for(tmp_path, rule_extra='warn_before = "15m"\nnotify = ["webhook:ops"]')
    assert main(["-c", str(config), "policies", "check"]) == 78
    err = capsys.readouterr().err
    assert "notify" in err and "a webhook is named in a level's notify" in err
