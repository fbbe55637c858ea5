"""The harness leaves nothing behind: a stopped Dovecot has no process left (its master leaves imap, log and stats
children running when it stops, which the harness kills), a cleaned-up one no files; a stopped SMTP sink no
listener; a cleaned-up PostgreSQL cluster no server process and no files.

Other test runs may share the machine, so processes are told apart by what belongs to the server under test (the
Dovecot instance's process title, the PostgreSQL postmaster's pid and its children), not by a global ``pgrep``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailesc.testing import DovecotServer, SmtpSink, find_dovecot, port_accepts
from mailesc.testing.postgres import PostgresCluster, find_bin_folder

pytestmark = pytest.mark.integration


def _alive_with_parent(pid: int) -> list[int]:
    """``pid`` itself if alive, and the pids of its live children (from /proc/<pid>/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, parent = fields[0], int(fields[1])
        if state != "Z" and (int(stat.parent.name) == pid or parent == pid):
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(find_dovecot() is None, reason="dovecot-imapd is not installed")
def test_a_stopped_dovecot_leaves_no_process_and_a_cleaned_up_one_no_files():
    server = DovecotServer().start()
    try:
        box = server.new_mailbox("cleanup")
        uid = box.append("INBOX", b"Subject: kept\r\n\r\nacross a restart\r\n")
        client = box.client()  # a logged-in session: an imap child process besides the master's own
        client.select_folder("INBOX")
        running = server.processes()
        assert server.pid in running and len(running) >= 3, running
        server.stop()
        assert server.processes() == []
        assert not port_accepts(server.host, server.port)
        client.shutdown()
        server.start()  # the same port and mail after a restart
        assert server.processes() and box.uids() == [uid]
    finally:
        root = server.root
        server.cleanup()
    assert server.processes() == [] and not root.exists()


def test_a_stopped_smtp_sink_no_longer_listens():
    sink = SmtpSink().start()
    assert port_accepts(sink.host, sink.port)
    sink.stop()
    assert not port_accepts(sink.host, sink.port)


@pytest.mark.skipif(find_bin_folder() is None, reason="PostgreSQL is not installed")
def test_a_cleaned_up_postgres_cluster_leaves_no_process_and_no_files():
    cluster = PostgresCluster().start()
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        assert postmaster in _alive_with_parent(postmaster) and len(_alive_with_parent(postmaster)) > 1
        root = cluster.root
    finally:
        cluster.cleanup()
    assert _alive_with_parent(postmaster) == [] and not root.exists()
