"""Review history, breach filters and the archive: pure logic plus the small files they write; the archive's
behaviour through the store's API runs on both stores (the ``backend`` fixture)."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.errors import UsageError
from mailesc.history import load_breach
from mailesc.reporting.queries import BreachFilter, StoredBreach, customer_matches
from mailesc.model import Breach, Kind, Status, Thread, ThreadMessage
from mailesc.reviews import REOPENED, REVIEWED, UNREVIEWED, ReviewEntry, Reviews, record_review, reviews_path
from mailesc.store import Store, archive_folder, read_archive
from tests.support import Backend

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PERIOD = timedelta(days=30)
CAUSES = ("staffing", "tooling", "other")


@pytest.mark.parametrize("address, wanted, matches", [
    ("pat@acme.example", "pat@acme.example", True),
    ("Pat@Acme.Example", "pat@acme.example", True),
    ("pat@acme.example", "acme.example", True),
    ("pat@acme.example", "@acme.example", True),
    ("pat@acme.example", "ACME.example", True),
    ("pat@acme.example", "kim@acme.example", False),
    ("pat@sub.acme.example", "acme.example", False),
    ("pat@acme.example.org", "acme.example", False),
    ("pat@acme.example", "acme", False),
])
def test_customer_is_an_address_or_a_domain(address, wanted, matches):
    assert customer_matches(address, wanted) is matches


def _breach(number, *, due, policy="default", customer="pat@acme.example", status=Status.OPEN):
    return Breach(id=number, thread=f"<t{number}@x>", customer=customer, subject=f"s{number}", policy=policy,
                  received_at=due - timedelta(hours=4), due_at=due, status=status)


BREACHES = [
    _breach(1, due=datetime(2026, 9, 1, tzinfo=UTC)),                                  # unreviewed, overdue
    _breach(2, due=datetime(2026, 11, 16, tzinfo=UTC), policy="vip"),                  # reviewed
    _breach(3, due=datetime(2026, 11, 20, tzinfo=UTC), customer="kim@other.example",
            status=Status.RESPONDED_LATE),                                             # reopened: unreviewed again
    _breach(4, due=datetime(2026, 10, 1, tzinfo=UTC), status=Status.RESPONDED_LATE),   # reviewed (a month late)
]
ENTRIES = [
    ReviewEntry(breach=2, at=NOW, by="alice", action="review", cause="staffing"),
    ReviewEntry(breach=3, at=NOW, by="alice", action="review", cause="tooling"),
    ReviewEntry(breach=3, at=NOW + timedelta(minutes=5), by="bob", action="reopen", note="not tooling"),
    ReviewEntry(breach=4, at=NOW, by="alice", action="review", cause="other"),
]


@pytest.mark.parametrize("query, ids", [
    (BreachFilter(), [1, 2, 3, 4]),
    (BreachFilter(since=datetime(2026, 11, 1, tzinfo=UTC)), [2, 3]),
    (BreachFilter(until=datetime(2026, 11, 16, tzinfo=UTC)), [1, 4]),         # until is exclusive
    (BreachFilter(since=datetime(2026, 11, 16, tzinfo=UTC), until=datetime(2026, 11, 17, tzinfo=UTC)), [2]),
    (BreachFilter(policy="vip"), [2]),
    (BreachFilter(customer="other.example"), [3]),
    (BreachFilter(status="responded_late"), [3, 4]),
    (BreachFilter(unreviewed=True), [1, 3]),
    (BreachFilter(overdue_review=True), [1]),                                  # 3 is unreviewed but recent
    (BreachFilter(unreviewed=True, status="open"), [1]),
])
@pytest.mark.parametrize("stored", [False, True], ids=["objects", "as stored"])
def test_breach_filters_combine(query, ids, stored):
    breaches = [StoredBreach.of(b) for b in BREACHES] if stored else BREACHES
    assert [b.id for b in query.select(breaches, Reviews(ENTRIES), NOW, PERIOD)] == ids


def test_a_review_state_follows_its_latest_entry_and_keeps_every_entry():
    reviews = Reviews(ENTRIES)
    assert [reviews.state(i) for i in (1, 2, 3)] == [UNREVIEWED, REVIEWED, REOPENED]
    assert reviews.current(3) is None and reviews.current(2).cause == "staffing"
    summary = reviews.summary(BREACHES[2], NOW, PERIOD)
    assert summary["state"] == REOPENED and summary["cause"] is None and not summary["overdue"]
    assert [(h["by"], h["action"], h["cause"]) for h in summary["history"]] == [
        ("alice", "review", "tooling"), ("bob", "reopen", None)]
    assert summary["due_at"] == "2026-12-20T00:00:00+00:00"


def test_reviews_are_appended_to_their_own_file_and_read_back(tmp_path):
    store = tmp_path / "var" / "mailesc.json"
    for entry in ENTRIES:
        record_review(store, entry, CAUSES)
    assert reviews_path(store).exists() and not store.exists()
    again = Reviews.load(store)
    assert [e.action for e in again.history(3)] == ["review", "reopen"] and again.current(4).cause == "other"
    assert oct(reviews_path(store).stat().st_mode & 0o777) == "0o600"


def test_an_unknown_cause_is_refused_with_the_list(tmp_path):
    with pytest.raises(UsageError, match="staffing, tooling, other"):
        record_review(tmp_path / "s.json", ReviewEntry(breach=1, at=NOW, by="a", action="review", cause="bad"),
                      CAUSES)
    assert not reviews_path(tmp_path / "s.json").exists()


# -- archive ---------------------------------------------------------------------------------------------------


def _thread(number: int, arrived: datetime) -> Thread:
    message = ThreadMessage(key=str(number), folder="INBOX", message_id=f"<t{number}@x>", kind=Kind.CUSTOMER,
                            sender="pat@acme.example", arrived=arrived, subject=f"s{number}")
    return Thread(id=f"<t{number}@x>", subject=f"s{number}", ids={f"<t{number}@x>"}, messages=[message])


def _filled_store(backend, folder):
    """Three threads with a breach each, flushed, in the default mailbox of an open store (the caller closes it)."""
    store = backend.open(folder)
    box = store.box("default")
    for number, month in ((1, 8), (2, 9), (3, 11)):
        thread = _thread(number, datetime(2026, month, 3, tzinfo=UTC))
        breach = box.new_breach(thread=thread.id, customer="pat@acme.example", subject=thread.subject,
                                policy="default", received_at=thread.messages[0].arrived,
                                due_at=thread.messages[0].arrived + timedelta(hours=4))
        thread.breach_ids[0] = breach.id
        box.put_thread(thread)
    box.flush()
    return store


def test_archived_threads_leave_the_live_set_and_keep_their_breaches(tmp_path, backend):
    with _filled_store(backend, tmp_path) as store:
        box = store.box("default")
        box.archive([box.threads["<t1@x>"], box.threads["<t2@x>"]])
        box.flush()
    if backend.name == "file":  # the file store's layout: one archive file per month of the thread
        folder = archive_folder(tmp_path / "var" / "mailesc.json")
        assert sorted(p.name for p in folder.iterdir()) == ["2026-08.jsonl", "2026-09.jsonl"]
    with backend.open(tmp_path) as store:
        box = store.box("default")
        assert list(box.threads) == ["<t3@x>"] and list(box.breaches) == [3]
        assert box.new_breach(thread="<t4@x>", customer="x", subject="", policy="p", received_at=NOW,
                              due_at=NOW).id == 4  # never an archived breach's id again
    history = backend.history(tmp_path)
    assert sorted(i for _, i in history.threads) == ["<t1@x>", "<t2@x>", "<t3@x>"]
    assert sorted(history.breaches) == [1, 2, 3]  # 4 was never flushed
    assert history.thread_of(history.breaches[1]).subject == "s1"


def test_breach_ids_are_not_reused_even_when_the_newest_is_archived(tmp_path, backend):
    with _filled_store(backend, tmp_path) as store:
        box = store.box("default")
        box.archive([box.threads["<t3@x>"]])
        box.flush()
    with backend.open(tmp_path) as store:
        assert store.box("default").new_breach(thread="<t9@x>", customer="x", subject="", policy="p",
                                               received_at=NOW, due_at=NOW).id == 4


def test_a_crash_between_archive_and_flush_loses_nothing_and_duplicates_nothing(tmp_path, backend):
    with _filled_store(backend, tmp_path) as store:
        box = store.box("default")
        box.archive([box.threads["<t1@x>"]])  # no flush: as if killed here
    with backend.open(tmp_path) as store:
        box = store.box("default")
        assert "<t1@x>" in box.threads  # still live
        box.archive([box.threads["<t1@x>"]])  # archived again by the next run
        box.flush()
    with backend.open(tmp_path) as store:
        assert sorted(store.box("default").threads) == ["<t2@x>", "<t3@x>"]
    history = backend.history(tmp_path)
    assert sorted(i for _, i in history.threads) == ["<t1@x>", "<t2@x>", "<t3@x>"] and sorted(history.breaches) == [
        1, 2, 3]
    if backend.name == "file":  # the file store appended the thread once per archiving run; readers take one
        path = tmp_path / "var" / "mailesc.json"
        archived = list(read_archive(path))
        assert [thread.id for thread, _ in archived] == ["<t1@x>"] and [b.id for b in archived[0][1]] == [1]
        assert len((archive_folder(path) / "2026-08.jsonl").read_text().splitlines()) == 2


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_next_append_starts_afresh(tmp_path):
    """The file store's archive files (their damage is the file store's own)."""
    path = tmp_path / "var" / "mailesc.json"
    with _filled_store(Backend("file"), tmp_path) as store:
        store.archive([store.threads["<t1@x>"]])
        store.flush()
    archive_file = archive_folder(path) / "2026-08.jsonl"
    line = archive_file.read_text()
    archive_file.write_text(line + line[: len(line) // 2])  # a second copy, cut in the middle
    with Store(path) as store:
        thread = _thread(5, datetime(2026, 8, 20, tzinfo=UTC))
        store.put_thread(thread)
        store.archive([thread])
        store.flush()
    assert sorted(t.id for t, _ in read_archive(path)) == ["<t1@x>", "<t5@x>"]
    assert json.loads(archive_file.read_text().splitlines()[-1])["thread"]["id"] == "<t5@x>"


@pytest.mark.parametrize("breach_id, subject", [(1, "s1"), (3, "s3"), (7, None)])
def test_one_breach_is_found_live_or_archived_without_reading_everything(tmp_path, backend, breach_id, subject):
    with _filled_store(backend, tmp_path) as store:
        box = store.box("default")
        box.archive([box.threads["<t1@x>"]])
        box.flush()
        if backend.name == "file":
            history = load_breach(tmp_path / "var" / "mailesc.json", breach_id)
            thread, breach = (history.thread_of(history.breaches[breach_id]) if history.breaches else None,
                              history.breaches.get(breach_id))
        else:
            thread, breach = store.find_breach(breach_id)
    if subject is None:
        assert breach is None and thread is None
    else:
        assert breach.id == breach_id and thread.subject == subject
