"""Liveness: every successful poll beats a small heartbeat file beside the store; `status` is unhealthy when the
last one is older than `daemon.stale_after` (by default 3 polls, at least 2 minutes), or when there is none."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailesc import app
from mailesc.config import load_config
from mailesc.errors import ConfigError
from mailesc.store import Store, heartbeat_path, read_heartbeat, write_heartbeat
from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, write_config

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("daemon, stale_after", [
    ("", timedelta(minutes=2)),  # 3 x 30 s is below the floor of 2 minutes
    ("poll_seconds = 10", timedelta(minutes=2)),
    ("poll_seconds = 60", timedelta(minutes=3)),
    ("poll_seconds = 300", timedelta(minutes=15)),
    ('stale_after = "10m"', timedelta(minutes=10)),
    ('poll_seconds = 5\nstale_after = "30s"', timedelta(seconds=30)),  # said outright, the floor does not apply
])
def test_stale_after_defaults_to_three_polls_but_at_least_two_minutes(tmp_path, daemon, stale_after):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE, extra=f"[daemon]\n{daemon}")
    assert load_config(config).stale_after == stale_after


@pytest.mark.parametrize("daemon, problem", [
    ('stale_after = "soon"', "is not a duration"),
    ('stale_after = "0s"', "longer than 0"),
    ('poll_seconds = 60\nstale_after = "1m"', "longer than poll_seconds"),
    ("stale_after = 120", "must be a string"),
])
def test_a_bad_stale_after_is_a_config_error_naming_the_key(tmp_path, daemon, problem):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE, extra=f"[daemon]\n{daemon}")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "daemon.stale_after" in str(caught.value) and problem in str(caught.value) and str(config) in str(caught.value)


@pytest.mark.parametrize("beat_ago, store_ok_ago, healthy, problem", [
    (None, None, False, "no successful poll on record"),          # never started
    (timedelta(seconds=5), None, True, None),
    (timedelta(minutes=2), None, True, None),                       # exactly stale_after: not older than it
    (timedelta(minutes=2, seconds=1), None, False, "no successful poll since 2026-11-29T11:57:59+00:00"),
    (timedelta(hours=3), None, False, "3h ago, longer than daemon.stale_after 2m"),  # stopped or killed
    (None, timedelta(minutes=1), True, None),                       # a store written before heartbeats existed
    (timedelta(hours=1), timedelta(minutes=1), True, None),         # the newer of the two counts
    (timedelta(minutes=1), timedelta(hours=1), True, None),
], ids=["never", "fresh", "at-the-limit", "just-stale", "long-dead", "store-only", "store-newer", "beat-newer"])
def test_status_judges_liveness_by_the_last_successful_poll(tmp_path, beat_ago, store_ok_ago, healthy, problem):
    config = load_config(write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE))
    if store_ok_ago is not None:
        with Store(config.store_path) as store:
            store.health["mailbox"] = {"ok_at": (NOW - store_ok_ago).isoformat(), "error": None,
                                       "failing_since": None}
            store.flush()
    if beat_ago is not None:
        config.store_path.parent.mkdir(exist_ok=True)
        write_heartbeat(config.store_path, NOW - beat_ago)
    result = app.status(config, NOW)
    assert result["healthy"] is healthy and result["stale_after_seconds"] == 120
    agos = [ago for ago in (beat_ago, store_ok_ago) if ago is not None]
    assert result["last_poll_at"] == ((NOW - min(agos)).isoformat() if agos else None)
    if problem is None:
        assert result["problems"] == []
    else:
        assert len(result["problems"]) == 1 and problem in result["problems"][0], result["problems"]


def test_other_problems_are_listed_beside_liveness(tmp_path):
    config = load_config(write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE))
    with Store(config.store_path) as store:
        store.health["mailbox"] = {"ok_at": None, "error": "cannot reach the IMAP server", "error_at": NOW.isoformat(),
                                   "failing_since": NOW.isoformat()}
        store.flush()
    result = app.status(config, NOW)
    assert result["healthy"] is False
    assert [p.split(": ")[0] for p in result["problems"]] == [
        "no successful poll on record", f"the mailbox is failing since {NOW.isoformat()}"]


def test_a_replay_store_is_not_judged_for_liveness(tmp_path):
    config = load_config(write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE))
    result = app.status(config, NOW, replay=True)
    assert result["healthy"] is True and result["last_poll_at"] is None and result["problems"] == []


def test_the_heartbeat_is_replaced_whole_and_a_damaged_one_is_a_problem_not_a_crash(tmp_path):
    store_path = tmp_path / "mailesc.json"
    with Store(store_path) as store:
        store.record_poll(NOW)
        store.record_poll(NOW + timedelta(seconds=30))
    assert read_heartbeat(store_path) == (NOW + timedelta(seconds=30), None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailesc-heartbeat.json", "mailesc.json.lock"]
    assert heartbeat_path(store_path).stat().st_mode & 0o077 == 0
    heartbeat_path(store_path).write_bytes(b"")
    when, problem = read_heartbeat(store_path)
    assert when is None and "heartbeat file" in problem and "damaged" in problem
