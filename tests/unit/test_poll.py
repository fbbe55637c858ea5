"""A source's poll hands over messages and returns the bookmarks that moved; it never writes them itself. The
intake stage records them once all it was handed is taken (mailesc.sources.Poll), and a poll that fails halfway
records nothing: what was handed over before the failure is read again and told apart as a duplicate."""

from __future__ import annotations

import mailbox
from types import MappingProxyType

import pytest

from mailesc.errors import SourceError
from mailesc.sources import Poll, poll_into
from mailesc.sources.maildir import MaildirSource


def _maildir(tmp_path, inbox: int, sent: int = 0) -> MaildirSource:
    root = mailbox.Maildir(tmp_path / "mail", create=True)
    for n in range(inbox):
        root.add(f"From: c{n}@example.org\nSubject: s{n}\nMessage-ID: <i{n}@x>\n\nbody\n".encode())
    folder = root.add_folder("Sent")
    for n in range(sent):
        folder.add(f"From: team@example.com\nSubject: r{n}\nMessage-ID: <s{n}@x>\n\nbody\n".encode())
    return MaildirSource(tmp_path / "mail", folders=("INBOX",), sent_folder="Sent")


@pytest.mark.parametrize("inbox,sent,moved", [
    (0, 0, set()),  # nothing new: no bookmark moves
    (3, 0, {"maildir:INBOX"}),
    (0, 2, {"maildir:Sent"}),
    (2, 2, {"maildir:INBOX", "maildir:Sent"}),
])
def test_a_poll_returns_the_bookmarks_that_moved_and_leaves_the_given_ones_alone(tmp_path, inbox, sent, moved):
    source = _maildir(tmp_path, inbox, sent)
    given = MappingProxyType({})  # read-only: a poll that wrote into it would raise
    poll = Poll(source, given)
    assert poll.bookmarks == {}
    assert len(list(poll)) == inbox + sent
    assert set(poll.bookmarks) == moved
    assert all(len(state["seen"]) for state in poll.bookmarks.values())


def test_a_second_poll_with_the_recorded_bookmarks_finds_nothing_and_moves_nothing(tmp_path):
    source = _maildir(tmp_path, 2, 1)
    bookmarks: dict = {}
    assert len(poll_into(source, bookmarks)) == 3
    poll = Poll(source, bookmarks)
    assert list(poll) == [] and poll.bookmarks == {}


def test_a_poll_that_fails_halfway_records_no_bookmark(tmp_path):
    import shutil

    source = _maildir(tmp_path, 2, 1)
    poll = Poll(source, {})
    messages = iter(poll)
    taken = [next(messages), next(messages)]  # INBOX is read...
    shutil.rmtree(tmp_path / "mail" / ".Sent")  # ...then the Sent folder goes away before it is listed
    with pytest.raises(SourceError):
        taken.extend(messages)
    assert len(taken) == 2 and poll.bookmarks == {}  # nothing is marked read: INBOX is handed over again
    assert sorted(raw.key for raw in MaildirSource(tmp_path / "mail", sent_folder="").poll({})) == \
        sorted(raw.key for raw in taken)


def test_a_source_without_bookmarks_hands_over_a_list_and_moves_none(tmp_path):
    class Listed:
        def poll(self, bookmarks):
            return ["a", "b"]

    poll = Poll(Listed(), {})  # type: ignore[arg-type]
    assert list(poll) == ["a", "b"] and poll.bookmarks == {}
