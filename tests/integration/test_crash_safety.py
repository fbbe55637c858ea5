"""Crash safety of `mailesc run`: SIGKILL at random moments, many times, while mail flows.

Afterwards every escalation that fell due was delivered, none twice under different Message-IDs (a resend
after a crash between the SMTP server's acceptance and the store commit keeps its Message-ID, so it is the
only duplicate allowed), no thread answered in time was escalated, the store loads and says every escalation
was sent, and no daemon printed a traceback. About half the kills are aimed at the 0.1 s after a deadline, where
the daemon records, sends and commits. The scenario lives in ``mailesc.testing.soak``; ``benchmarks/soak_kill.py`` runs
it for 200+ rounds.

Reproduce a failure with the printed seed: ``MAILESC_CRASH_SEED=<seed> python3 -m pytest <this file> -s``
(``MAILESC_CRASH_ROUNDS`` raises the number of rounds; it is never lowered below 50).

On PostgreSQL (the ``backend`` fixture) a few rounds are run: the store's promise is the same, and each round
costs more there (a daemon's start connects, checks the schema and takes the mailbox's lease).
"""

from __future__ import annotations

import os

import pytest

from mailesc.testing.soak import CrashSoak, report, table

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("MAILESC_CRASH_SEED", "20261023"))
ROUNDS = {"file": max(50, int(os.environ.get("MAILESC_CRASH_ROUNDS", "50"))),
          "postgresql": max(12, int(os.environ.get("MAILESC_CRASH_ROUNDS_POSTGRESQL", "12")))}
KILLS = {"file": 50, "postgresql": 12}


def test_sigkill_at_random_points_loses_no_escalation_and_never_sends_one_under_two_ids(tmp_path, mailbox,
                                                                                       smtp_sink, backend):
    rounds = ROUNDS[backend.name]
    print(f"\ncrash-safety seed={SEED} rounds={rounds} store={backend.name}")
    soak = CrashSoak(tmp_path, mailbox, smtp_sink, seed=SEED, rounds=rounds, final_timeout=90, backend=backend,
                     say=print)
    try:
        outcome = soak.run()
    finally:
        soak.kill_leftover()  # never leave a daemon behind, whatever failed
    print(table(outcome.summary()))
    print(f"same-Message-ID duplicates (resends after a crash): {outcome.duplicates}")
    details = report(outcome, tmp_path)

    # The scenario really injected faults and really produced work.
    assert outcome.kills >= KILLS[backend.name], details
    assert len(outcome.unanswered) >= rounds // 5 and outcome.answered, details

    # (a) exactly the due escalations arrived: every unanswered thread at both levels, no answered thread.
    assert outcome.delivered_pairs == outcome.expected, details
    assert not outcome.unexpected and not outcome.wrong_recipients, details
    # (b) a duplicate is only ever a resend of the same Message-ID.
    assert outcome.id_conflicts == {}, details
    # (c) the store loads: one breach per unanswered thread, every escalation sent (as the server saw it).
    assert outcome.breaches is not None, details
    assert outcome.store_problems() == [], details
    # (d) no daemon died of anything but our signals, and none printed a traceback.
    assert outcome.tracebacks == [] and outcome.early_exits == [], details
    assert outcome.final is not None and outcome.final.returncode == 0, details
    assert outcome.problems() == [], details
