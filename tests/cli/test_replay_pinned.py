"""A replay's outcome is pinned: the counts below are what `main` gave before the replay and parsing speed work
(issue 13, goal 4) on the same input, so a faster mbox reader, header split or cache cannot change what a replay
finds (threads, breaches, escalations, mails) without this failing."""

from __future__ import annotations

import json

import pytest

from mailesc.cli import main
from tests.support import CORPORA, REPO

EXAMPLE_INBOX = REPO / "examples" / "support-inbox.mbox"
EXAMPLE = {"messages": 426, "threads": 142, "responded": 121, "responded_on_time": 104, "responded_late": 17,
           "unanswered": 21, "breaches": 38, "escalations": 61, "mails": 61, "ignored_auto": 19, "ignored_spam": 0,
           "quarantined": 0, "duplicates": 0, "start": "2026-10-01T08:24:05+00:00",
           "end": "2026-10-28T16:02:56+00:00"}
CORPORA_REPLAY = {"messages": 529, "threads": 78, "responded": 0, "responded_on_time": 0, "responded_late": 0,
                  "unanswered": 78, "breaches": 69, "escalations": 138, "mails": 138, "ignored_auto": 414,
                  "ignored_spam": 2, "quarantined": 2, "duplicates": 31, "start": "1969-02-13T23:32:00-03:30",
                  "end": "2025-11-03T18:23:00+01:00"}


def _example_config(tmp_path, extra: str = ""):
    """examples/mailesc.toml with the repository's policies (two escalation levels, an office calendar)."""
    text = ((REPO / "examples" / "mailesc.toml").read_text().replace('"../policies"', f'"{REPO / "policies"}"')
            .replace('"../templates"', f'"{REPO / "templates"}"').replace("../var", "var"))
    config = tmp_path / "mailesc.toml"
    config.write_text(text + extra)
    return config


def _replay(config, mailbox, capsys) -> dict:
    assert main(["-c", str(config), "replay", str(mailbox), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    return {key: value for key, value in summary.items() if key not in ("store", "outbox")}


@pytest.mark.parametrize("extra, changed", [
    ("", {}),
    ("digest_after = 1\n", {"mails": 56}),  # storm control: escalations at the same moment share a digest
], ids=["one-mail-per-escalation", "digests"])
def test_the_example_inbox_replays_to_the_pinned_counts(tmp_path, capsys, extra, changed):
    config = _example_config(tmp_path, extra)
    assert _replay(config, EXAMPLE_INBOX, capsys) == {**EXAMPLE, **changed}


def test_the_corpora_replay_to_the_pinned_counts(tmp_path, capsys):
    """Real bounces, auto-replies and odd MIME as a folder of .eml files (and one mbox inside it)."""
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")
    assert _replay(_example_config(tmp_path), CORPORA, capsys) == CORPORA_REPLAY
