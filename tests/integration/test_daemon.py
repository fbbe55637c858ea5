"""`mailesc run` as a real process: escalates within seconds of a deadline and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from tests.support import FIVE_SECOND_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration



def test_run_escalates_within_seconds_of_the_deadline_and_stops_on_sigterm(tmp_path, mailbox, smtp_sink, backend):
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink),
                          rules=FIVE_SECOND_RULE, extra="[daemon]\npoll_seconds = 1", store=backend.store_section)
    env = {**os.environ, "MAILESC_IMAP_PASSWORD": mailbox.password}
    log = open(tmp_path / "daemon.log", "w+")
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        # The clock starts once the daemon is up: on PostgreSQL its start (psycopg, the connection, a fresh
        # database's schema, its lease) can take longer than the rule's five seconds on a busy machine.
        up_by = time.monotonic() + 60
        while "mailesc started" not in (tmp_path / "daemon.log").read_text() and daemon.poll() is None:
            assert time.monotonic() < up_by, "the daemon did not start within a minute"
            time.sleep(0.05)
        appended_at = datetime.now(timezone.utc)
        raw, message_id = make_mail(sender="Pat <pat@customer.example>", subject="Printer on fire", date=appended_at)
        mailbox.append("INBOX", raw, appended_at)

        [mail] = smtp_sink.wait_for(1, timeout=20)

        deadline = appended_at.replace(microsecond=0).timestamp() + 5  # INTERNALDATE has whole seconds
        late_by = mail.received_at.timestamp() - deadline
        assert 0 <= late_by < 3, f"escalation arrived {late_by:.1f}s after the deadline"
        assert mail.rcpt_tos == ["manager@example.test"]
        assert message_id in mail.message["References"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=15)
        finally:
            daemon.kill()
    log.seek(0)
    output = log.read()
    assert code == 0, output
    assert "stopped" in output and "Traceback" not in output
    if backend.name == "postgresql":  # SIGTERM gave the mailbox's lease back at once
        with backend.open(tmp_path) as store:
            assert store.connection().execute("SELECT mailbox, owner FROM leases").fetchall() == [("default", None)]
