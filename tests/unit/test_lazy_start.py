"""A start that reads only what it needs: the engine takes the agenda its file store kept (every clock is
evaluated again only without it, or when the policies changed), reads no thread when nothing is new or due,
and decides exactly as a start that read everything.

Each `once` is a new Engine on a newly opened store, as cron runs it; the mail comes from a local Maildir and
the escalations go to an outbox Maildir (no wire is crossed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailesc.policies import Level, Match, Policies, Rule
from mailesc.store import Store
from tests.support import outbox_mails
from tests.unit.test_intake import H, T0, World, policies
from tests.unit.test_store_index import damage_index, drop_index

M = timedelta(minutes=1)
MOMENTS = (T0 + 31 * M, T0 + 65 * M, T0 + 75 * M, T0 + 100 * M, T0 + 3 * H + 25 * M)


def quick_ladder() -> Policies:
    """The same first response as policies(), level 2 after 30 minutes instead of 2 hours."""
    ladder = (Level(1, timedelta(0), ("manager@example.test",)), Level(2, 30 * M, ("director@example.test",)))
    return Policies(rules=(Rule(name="standard", source="test", match=Match(), first_response=H, escalate=ladder),))


@pytest.fixture
def world(tmp_path):
    made = World(tmp_path)
    yield made
    made.close()


def first_sync(world: World) -> None:
    """Three customer threads, 10 minutes apart, taken in by a first `once`; nothing is due yet."""
    for n in range(3):
        world.deliver(T0 + n * 10 * M, subject=f"Case {n}")
    report = world.engine(policies()).cycle(T0 + 30 * M)
    assert (report.threads_opened, report.escalations_recorded) == (3, 0)
    world.close()


def onces(world: World, rules=policies, moments=MOMENTS) -> list[tuple]:
    """A `once` at each moment: (breaches, escalations recorded, threads read from the store) of each."""
    seen = []
    for moment in moments:
        report = world.engine(rules()).cycle(moment)
        seen.append((report.breaches, report.escalations_recorded, len(world.store._default.threads.read())))
        world.close()
    return seen


def sent(world: World) -> list[str]:
    return sorted(m["X-Mailesc"].partition("; sig=")[0] for m in outbox_mails(world.outbox))


def test_a_once_with_nothing_new_or_due_reads_no_thread_and_the_ladder_climbs_on_time(world):
    first_sync(world)
    assert onces(world) == [
        (0, 0, 0),  # nothing new, nothing due: no thread read
        (1, 1, 1),  # thread 0 due at T0 + 1h: only it is read, and escalated
        (1, 1, 1),  # thread 1 (due T0 + 1h10)
        (1, 1, 1),  # thread 2 (due T0 + 1h20)
        (0, 3, 3),  # level 2 of each, two hours after its deadline
    ]
    assert sent(world) == sorted(f"escalation; level={level}; breach={breach}" for breach in (1, 2, 3)
                                 for level in (1, 2))


@pytest.mark.parametrize("spoil", [drop_index, lambda path: damage_index(path, lambda s: s.update(version=1))],
                         ids=["store from an older mailesc (no index)", "index of an older version"])
def test_a_store_without_a_usable_index_gives_the_same_decisions_and_is_upgraded(tmp_path, spoil):
    for name in ("plain", "spoilt"):
        (tmp_path / name).mkdir()
    plain, spoilt = World(tmp_path / "plain"), World(tmp_path / "spoilt")
    try:
        for each in (plain, spoilt):
            first_sync(each)
        spoil(spoilt.store_path)
        with Store(spoilt.store_path) as store:  # read whole, as before
            assert store._default.index is None and len(store._default.threads.read()) == 3
        expected, got = onces(plain), onces(spoilt)
        assert [row[:2] for row in got] == [row[:2] for row in expected]
        assert got[0][2] == 3 and got[1:] == expected[1:]  # the first start reads all, then the index is back
        assert sent(spoilt) == sent(plain) and len(sent(plain)) == 6
        with Store(spoilt.store_path) as store:
            assert store._default.index is not None and store._default.threads.read() == []
    finally:
        plain.close()
        spoilt.close()


def test_after_the_policies_changed_every_clock_is_evaluated_again(world):
    """The stored wake-ups were computed with the old ladder (level 2 two hours after the deadline): with the
    new one (30 minutes) they would be late. The first start with the new policies evaluates every thread."""
    first_sync(world)
    assert onces(world, moments=(T0 + 65 * M,)) == [(1, 1, 1)]  # thread 0: level 1
    assert onces(world, quick_ladder, moments=(T0 + 100 * M,)) == [(2, 4, 3)]  # all read: 0's level 2, 1 and 2
    assert onces(world, quick_ladder, moments=(T0 + 105 * M,)) == [(0, 0, 0)]  # the new wake-ups are kept
    assert onces(world, quick_ladder, moments=(T0 + 111 * M,)) == [(0, 1, 1)]  # thread 2's level 2 (T0 + 1h50)
