"""What an operator reads, against a real Dovecot and aiosmtpd: which lines -v, -vv and --trace add, the JSON
format, no customer data in decision lines, and SIGHUP reloading the policies and templates of a running daemon."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc import logs
from mailesc.transports.smtp import _TracedSMTP
from mailesc.testing import wait_until
from tests.integration.test_xoauth2 import imap_xoauth2_section, smtp_xoauth2_section, token_command
from tests.support import FIVE_SECOND_RULE, ONE_HOUR_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER_NAME, CUSTOMER_ADDRESS, SUBJECT = "Pat Customer", "pat@customer.example", "Invoice 4711 is wrong"

# What each kind of line looks like in the text format.
MARKERS = {
    "decision": "INFO mailesc.cycle: thread <",  # thread opened, clock started, ...
    "breach": "INFO mailesc.cycle: breach 1: thread <",
    "sent": "INFO mailesc.outbox: sent the level 1 escalation for breach 1",
    "debug": "DEBUG mailesc.cycle: message <",
    "imap-trace": "DEBUG imapclient",
    "smtp-trace": "DEBUG mailesc.trace.smtp: > EHLO",
}
CASES = [
    ([], set()),
    (["-v"], {"decision", "breach", "sent"}),
    (["-vv"], {"decision", "breach", "sent", "debug"}),
    (["--trace"], {"imap-trace", "smtp-trace"}),
    (["-v", "--trace"], {"decision", "breach", "sent", "imap-trace", "smtp-trace"}),
]


def customer_writes(mailbox, when: datetime) -> str:
    raw, message_id = make_mail(sender=f"{CUSTOMER_NAME} <{CUSTOMER_ADDRESS}>", subject=SUBJECT, date=when)
    mailbox.append("INBOX", raw, when)
    return message_id


def mailesc(config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flags, expected", CASES, ids=lambda value: " ".join(value) if isinstance(value, list)
                         else None)
def test_each_verbosity_adds_its_lines_and_decision_lines_carry_no_customer_data(tmp_path, mailbox, smtp_sink,
                                                                                 flags, expected):
    customer_writes(mailbox, datetime.now(timezone.utc) - timedelta(hours=1, minutes=30))
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    done = mailesc(config, *flags, "once", env={"MAILESC_IMAP_PASSWORD": mailbox.password})

    assert done.returncode == 0, done.stderr
    assert "1 new breach(es), 1 mail(s) sent" in done.stdout
    shown = {name for name, marker in MARKERS.items() if marker in done.stderr}
    assert shown == expected, done.stderr
    assert mailbox.password not in done.stderr  # not even in the protocol trace
    if "--trace" not in flags:
        for private in (CUSTOMER_NAME, CUSTOMER_ADDRESS, SUBJECT):
            assert private not in done.stderr, f"{private!r} was logged:\n{done.stderr}"


def test_json_lines_parse_one_by_one_and_carry_the_decisions_fields(tmp_path, mailbox, smtp_sink):
    thread = customer_writes(mailbox, datetime.now(timezone.utc) - timedelta(hours=1, minutes=30))
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    done = mailesc(config, "-vv", "--log-format", "json", "once", env={"MAILESC_IMAP_PASSWORD": mailbox.password})

    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stderr.splitlines()]
    assert docs and all(list(doc)[:4] == ["time", "level", "logger", "message"] for doc in docs)
    [clock] = [doc for doc in docs if "clock started" in doc["message"]]
    assert (clock["thread"], clock["policy"]) == (thread, "standard")
    assert datetime.fromisoformat(clock["deadline"]) > datetime.now(timezone.utc) - timedelta(hours=1)
    [breach] = [doc for doc in docs if "missed its" in doc["message"]]
    assert (breach["breach"], breach["thread"], breach["deadline"]) == (1, thread, clock["deadline"])
    [recorded] = [doc for doc in docs if "escalation recorded" in doc["message"]]
    assert (recorded["breach"], recorded["escalation_level"]) == (1, 1)
    [sent] = [doc for doc in docs if doc["message"].startswith("sent the")]
    assert (sent["breach"], sent["escalation_level"], sent["kind"]) == (1, 1, "escalation")
    [mail] = smtp_sink.wait_for(1)
    assert sent["mail"] == mail.message["Message-ID"]
    assert not any(CUSTOMER_ADDRESS in line for line in done.stderr.splitlines())


def test_the_protocol_trace_never_shows_an_access_token(tmp_path, mailbox_oauth, smtp_sink_xoauth2):
    customer_writes(mailbox_oauth, datetime.now(timezone.utc) - timedelta(hours=1, minutes=30))
    config = write_config(
        tmp_path, mailbox=imap_xoauth2_section(mailbox_oauth, command=token_command(mailbox_oauth.access_token)),
        smtp=smtp_xoauth2_section(smtp_sink_xoauth2, command=token_command(smtp_sink_xoauth2.valid_token)),
        rules=ONE_HOUR_RULE)

    done = mailesc(config, "--trace", "once")

    assert done.returncode == 0, done.stderr
    assert "> AUTH XOAUTH2 ****" in done.stderr and "AUTHENTICATE" in done.stderr, done.stderr
    assert mailbox_oauth.access_token not in done.stderr and smtp_sink_xoauth2.valid_token not in done.stderr
    smtp_sink_xoauth2.wait_for(1)


ACK_RULE = """
[[rule]]
name = "standard"
first_response = "4h"
acknowledge = "ack"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_a_refused_acknowledgement_is_logged_without_the_customers_address(tmp_path, mailbox, smtp_sink):
    code, line = 550, "failed for good"
    customer_writes(mailbox, datetime.now(timezone.utc) - timedelta(minutes=5))
    smtp_sink.refuse_rcpt(CUSTOMER_ADDRESS.upper(), code)  # servers echo the address in any case
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ACK_RULE)

    done = mailesc(config, "-v", "once", env={"MAILESC_IMAP_PASSWORD": mailbox.password})

    [logged] = [entry for entry in done.stderr.splitlines() if line in entry]
    assert "the ack <mailesc." in logged and "the customer" in logged and str(code) in logged, done.stderr
    assert "acknowledgement to the customer recorded" in done.stderr
    assert CUSTOMER_ADDRESS not in done.stderr.lower(), done.stderr
    assert smtp_sink.messages == []


@pytest.mark.parametrize("mechanism", ["auth_plain", "auth_login"])
def test_the_smtp_trace_hides_a_password_in_every_step_of_the_login(smtp_sink, mechanism):
    secret = "hunter2-" + mechanism
    trace = io.StringIO()
    levels = {name: logging.getLogger(name).level for name in ("", "mailesc", "mailesc.trace", "imapclient")}
    handlers = list(logging.getLogger().handlers)
    logs.configure(trace=True, stream=trace)

    async def log_in() -> None:
        client = _TracedSMTP(hostname=smtp_sink.host, port=smtp_sink.port, timeout=10)
        await client.connect()
        await getattr(client, mechanism)("escalations@example.test", secret)
        await client.noop()
        await client.quit()

    try:
        asyncio.run(log_in())
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger().handlers[:] = handlers
    output = trace.getvalue()
    assert f"> AUTH {mechanism[5:].upper()} " in output and "< 235" in output and "> NOOP" in output, output
    encodings = {base64.b64encode(text.encode()).decode() for text in (
        secret, f"\0escalations@example.test\0{secret}", f"escalations@example.test\0{secret}")}
    assert not any(hidden in output for hidden in {secret, *encodings}), output


# --------------------------------------------------------------------------- SIGHUP

BROKEN_RULE = FIVE_SECOND_RULE.replace('first_response = "5s"', 'first_response = "soon"')
DIRECTOR_RULE = FIVE_SECOND_RULE.replace('name = "fast"', 'name = "fast-to-director"').replace(
    "manager@example.test", "director@example.test")


class RunningDaemon:
    """`mailesc -v --log-format json run` in a subprocess, its log read as JSON objects."""

    def __init__(self, config: Path, env: dict, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "-v", "--log-format",
                                         "json", "run"], env={**os.environ, **env}, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def lines(self) -> list[dict]:
        """The complete lines so far: a last line the daemon is still writing is read at the next look."""
        text = self.log_path.read_text()
        return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]

    def wait_for_line(self, predicate, what: str) -> dict:
        def found():
            assert self.process.poll() is None, f"the daemon ended:\n{self.log_path.read_text()}"
            return next((doc for doc in self.lines() if predicate(doc)), None)
        return wait_until(found, timeout=30, message=f"{what}:\n{self.log_path.read_text()}")

    def hangup(self, count_before: int) -> None:
        """SIGHUP, then wait for the reload's outcome (the how-manieth reload it is: count_before + 1)."""
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: len([d for d in self.lines() if d.get("reload")]) > count_before, timeout=30,
                   message=f"no reload line:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process.kill()
            self.log.close()


def test_sighup_refuses_a_broken_policy_keeps_the_old_one_and_takes_a_fixed_one(tmp_path, mailbox, smtp_sink):
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink),
                          rules=FIVE_SECOND_RULE, extra="[daemon]\npoll_seconds = 1")
    rules = tmp_path / "policies" / "rules.toml"
    daemon = RunningDaemon(config, {"MAILESC_IMAP_PASSWORD": mailbox.password}, tmp_path / "daemon.log")
    try:
        daemon.wait_for_line(lambda doc: doc["message"] == "mailesc started", "the daemon did not start")

        rules.write_text(BROKEN_RULE)
        daemon.hangup(0)
        refused = [doc for doc in daemon.lines() if doc.get("reload") == "refused"]
        assert refused and all(doc["level"] == "ERROR" for doc in refused)
        assert any("rules.toml" in doc["message"] and "first_response" in doc["message"] for doc in refused), refused

        customer_writes(mailbox, datetime.now(timezone.utc))  # the old policy still runs: its manager hears of it
        [first] = smtp_sink.wait_for(1, timeout=30)
        assert first.rcpt_tos == ["manager@example.test"]

        rules.write_text(DIRECTOR_RULE)
        daemon.hangup(len(refused))
        [done] = [doc for doc in daemon.lines() if doc.get("reload") == "done"]
        assert "fast-to-director" in done["message"], done

        customer_writes(mailbox, datetime.now(timezone.utc))  # the new policy: its recipient hears of it
        second = smtp_sink.wait_for(2, timeout=30)[1]
        assert second.rcpt_tos == ["director@example.test"]
        assert daemon.process.poll() is None  # two SIGHUPs later, still running
    finally:
        code = daemon.stop()
    lines = daemon.lines()  # every line, to the last one, is one JSON object
    assert code == 0, lines
    messages = [doc["message"] for doc in lines]
    assert messages.count("received SIGHUP: reloading the policies and templates") == 2
    assert "received SIGTERM, stopping after the current step" in messages and messages[-1] == "mailesc stopped"
    assert any(doc["message"].startswith("cycle: ") and "fetched" in doc for doc in lines)  # -v: cycle summaries
    assert not any(CUSTOMER_ADDRESS in m or CUSTOMER_NAME in m or SUBJECT in m for m in messages), messages
