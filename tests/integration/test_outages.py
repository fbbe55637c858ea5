"""The daemon through a mailbox outage: deadlines keep running, one log line per change, status tells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from mailesc.testing import wait_until
from tests.support import imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

RULE = """
[[rule]]
name = "fast"
first_response = "12s"  # long enough that the outage begins first, even on a loaded machine
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def status(config, env) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "status", "--json"],
                            capture_output=True, text=True, env=env, timeout=30)
    return result.returncode, json.loads(result.stdout)


def test_an_imap_outage_delays_no_escalation_and_is_logged_once(tmp_path, dovecot, mailbox, smtp_sink):
    config = write_config(tmp_path, mailbox=imap_section(mailbox).replace("timeout_seconds = 10",
                                                                          "timeout_seconds = 2"),
                          smtp=smtp_section(smtp_sink), rules=RULE, extra="[daemon]\npoll_seconds = 1")
    env = {**os.environ, "MAILESC_IMAP_PASSWORD": mailbox.password}
    log_path = tmp_path / "daemon.log"
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        raw, first = make_mail(sender="pat@customer.example", subject="Before the outage")
        mailbox.append("INBOX", raw, datetime.now(timezone.utc))
        wait_until(lambda: status(config, env)[1]["threads"] == 1, timeout=15, message="message not tracked")

        dovecot.stop()
        [mail] = smtp_sink.wait_for(1, timeout=20)  # the deadline passes during the outage: escalated anyway
        assert first in mail.message["References"]
        assert "could not be fetched" in mail.message.get_body(("plain",)).get_content()
        code, health = status(config, env)
        assert code == 1 and health["healthy"] is False and "IMAP" in health["mailbox"]["error"]

        dovecot.start()
        raw, second = make_mail(sender="kim@customer.example", subject="After the outage")
        mailbox.append("INBOX", raw, datetime.now(timezone.utc))
        [_, later] = smtp_sink.wait_for(2, timeout=120)  # polls back off (up to ~40 s after this outage), but the mailbox is read again
        assert second in later.message["References"]
        wait_until(lambda: status(config, env)[0] == 0, timeout=15, message="status never became healthy")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        finally:
            daemon.kill()
            dovecot.start()
    log = log_path.read_text()
    assert "Traceback" not in log
    assert log.count("retrying with backoff") == 1, log
    assert log.count("reachable again") == 1, log
    assert mailbox.password not in log
