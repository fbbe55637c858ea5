"""The replay's mailbox on its simulated clock: each poll hands over, in arrival order and once, what has arrived
by the clock's now; messages without a time come at the replay's end, after the dated ones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailesc.clock import SimulatedClock
from mailesc.sources.files import FileMailbox
from mailesc.sources.replay import ReplaySource
from mailesc.testing.mail import make_mail

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)


@pytest.fixture
def files(tmp_path) -> FileMailbox:
    """Five .eml files; the mbox/eml reader dates a message by its Date header or its Received line."""
    folder = tmp_path / "mail"
    folder.mkdir()
    for name, minute in (("a", 10), ("b", 0), ("c", 10), ("d", 30)):
        (folder / f"{name}.eml").write_bytes(make_mail(sender="pat@customer.example", date=T0 + minute * M,
                                                       subject=name)[0])
    undated = make_mail(sender="pat@customer.example", subject="e")[0]
    (folder / "e.eml").write_bytes(b"\n".join(line for line in undated.split(b"\n")
                                              if not line.startswith(b"Date:")))
    return FileMailbox(folder)


def subjects(raws) -> list[str]:
    return [raw.data.split(b"Subject: ")[1].split(b"\n")[0].strip().decode() for raw in raws]


@pytest.mark.parametrize("polls, handed", [
    ([T0 - M], [[]]),
    ([T0, T0 + 10 * M, T0 + 20 * M, T0 + 30 * M, T0 + 40 * M], [["b"], ["a", "c"], [], ["d"], ["e"]]),
    ([T0 + 40 * M, T0 + 50 * M], [["b", "a", "c", "d", "e"], []]),  # once each
    ([T0 + 30 * M], [["b", "a", "c", "d"]]),  # the undated one only at the end
])
def test_a_poll_hands_over_what_arrived_by_now(files, polls, handed):
    assert sum(raw.arrived is None for raw in files.messages) == 1  # e.eml has no time
    clock = SimulatedClock(T0 - M)
    source = ReplaySource(files, clock, end=T0 + 40 * M)
    got = []
    for when in polls:
        clock.advance_to(when)
        got.append(subjects(source.poll({})))
    assert got == handed
    assert set(source.fetch({raw.key for raw in files.messages})) == {raw.key for raw in files.messages}
