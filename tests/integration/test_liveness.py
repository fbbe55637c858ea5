"""A real `mailesc run`: every poll beats the heartbeat, `status` is healthy while it runs and unhealthy (exit 1,
saying since when) once it was killed and `daemon.stale_after` has passed."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import sys

import pytest

from mailesc.store import read_heartbeat
from mailesc.testing import wait_until
from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, REPO, write_config

pytestmark = pytest.mark.integration


def status(config) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "status", "--json"],
                            capture_output=True, text=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    return result.returncode, json.loads(result.stdout)


def test_a_killed_daemon_turns_status_unhealthy_after_stale_after(tmp_path):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE,
                          extra='[daemon]\npoll_seconds = 1\nstale_after = "5s"')
    mailbox.Maildir(tmp_path / "Maildir", create=True).add_folder("Sent")
    store = tmp_path / "var" / "mailesc.json"
    log = open(tmp_path / "daemon.log", "w")
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], stdout=log,
                              stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        first = wait_until(lambda: read_heartbeat(store)[0], timeout=30, message="no first poll")
        wait_until(lambda: read_heartbeat(store)[0] > first, timeout=30, message="the next poll did not beat")
        code, health = status(config)
        assert (code, health["healthy"], health["problems"], health["stale_after_seconds"]) == (0, True, [], 5)
    finally:
        daemon.send_signal(signal.SIGKILL)  # no goodbye: as the OOM killer or a power cut would
        daemon.wait(timeout=30)
    last = read_heartbeat(store)[0]
    code, health = wait_until(lambda: (lambda s: s if s[0] == 1 else None)(status(config)), timeout=30,
                              message="status stayed healthy after the daemon was killed")
    assert health["healthy"] is False and health["last_poll_at"] == last.isoformat()
    [problem] = health["problems"]
    assert f"no successful poll since {last.isoformat()}" in problem and "daemon.stale_after 5s" in problem
