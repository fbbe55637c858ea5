"""A config problem that appears while the daemon runs (its IMAP password file removed) is logged once, backed
off from and shown by `mailesc status`; putting the file back heals it. Never a hot loop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from mailesc.testing import wait_until
from tests.support import ONE_HOUR_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration


def status(config) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "status", "--json"],
                            capture_output=True, text=True, timeout=30)
    return result.returncode, json.loads(result.stdout)


def test_a_password_file_removed_while_running_is_logged_once_and_shown_by_status(tmp_path, dovecot, mailbox,
                                                                                    smtp_sink):
    password_file = tmp_path / "imap-password"
    password_file.write_text(mailbox.password + "\n")
    password_file.chmod(0o600)
    section = imap_section(mailbox).replace('password_env = "MAILESC_IMAP_PASSWORD"',
                                            f'password_file = "{password_file}"')
    config = write_config(tmp_path, mailbox=section, smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE,
                          extra="[daemon]\npoll_seconds = 1")
    log_path = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k != "MAILESC_IMAP_PASSWORD"}
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        raw, _ = make_mail(sender="pat@customer.example", subject="Before", date=datetime.now(timezone.utc))
        mailbox.append("INBOX", raw, datetime.now(timezone.utc))
        wait_until(lambda: status(config)[1]["threads"] == 1, timeout=20, message="the first poll never happened")

        password_file.unlink()
        dovecot.restart()  # the connection drops: the daemon must log in again, and the password is gone
        wait_until(lambda: "mailbox.password_file" in (status(config)[1]["mailbox"]["error"] or ""), timeout=30,
                   message="status never showed the missing password file")
        code, health = status(config)
        assert code == 1 and health["healthy"] is False
        assert health["mailbox"]["error"].startswith(f"{config}: mailbox.password_file: cannot read {password_file}")
        time.sleep(6)  # a few backed-off polls fail meanwhile (after 2 s, then 4 s): none of them logs again

        password_file.write_text(mailbox.password + "\n")
        password_file.chmod(0o600)
        wait_until(lambda: "reachable again" in log_path.read_text(), timeout=60, message="never recovered")
        wait_until(lambda: status(config)[0] == 0, timeout=30, message="status never became healthy again")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=15)
        finally:
            daemon.kill()
    log = log_path.read_text()
    assert code == 0, log
    assert log.count("mailbox.password_file") == 1, log  # logged once, not once per poll
    failed_polls = int(re.search(r"reachable again after (\d+) failed poll", log).group(1))
    assert 2 <= failed_polls < 10, log  # retried with backoff: more than once, far from a hot loop
    assert mailbox.password not in log and "Traceback" not in log
