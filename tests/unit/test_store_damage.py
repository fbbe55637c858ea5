"""A damaged store, review file or archive file is refused (exit status 65) and left byte for byte as it was;
the message names the file, the place and the problem, never what the file holds (customer names, subjects,
addresses would otherwise reach the terminal and the journal). Only where no file exists is a new one made."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.errors import StoreBusy, StoreError
from mailesc.history import load_breach, load_history
from mailesc.model import Breach, Kind, Thread, ThreadMessage
from mailesc.reviews import ReviewEntry, Reviews, record_review, reviews_path
from mailesc.store import Store, archive_folder, read_archive

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc)
NAME, SUBJECT, ADDRESS = "Quentin Zebrowski", "Refund for order 4711 urgent", "quentin@zebra-customer.example"
CUSTOMER_TEXT = (NAME, SUBJECT, ADDRESS, "Zebrowski", "4711", "zebra-customer")
NOTE = "Zebrowski called twice about 4711"


def customer_thread(number: int = 1, arrived: datetime = T0) -> Thread:
    root = f"<order-4711-{number}@zebra-customer.example>"
    return Thread(id=root, subject=SUBJECT, ids={root}, policy="default", due_at=arrived + timedelta(hours=1),
                  messages=[ThreadMessage(key=f"INBOX/{number}", folder="INBOX", message_id=root, kind=Kind.CUSTOMER,
                                          sender=ADDRESS, arrived=arrived, subject=SUBJECT, name=NAME)])


def write_store(path: Path) -> bytes:
    with Store(path) as store:
        thread = customer_thread()
        breach = store.new_breach(thread=thread.id, customer=ADDRESS, subject=SUBJECT, policy="default",
                                  received_at=T0, due_at=T0 + timedelta(hours=1))
        thread.breach_ids[0] = breach.id
        store.put_thread(thread)
        store.sync["maildir:new"] = {"seen": ["1.a"]}
        store.flush()
    return path.read_bytes()


def write_reviews(store_path: Path) -> bytes:
    record_review(store_path, ReviewEntry(breach=1, at=T0, by="alice", action="review", cause="staffing", note=NOTE),
                  ("staffing",))
    return reviews_path(store_path).read_bytes()


def write_archive(store_path: Path) -> bytes:
    """An archive month holding two threads of the same customer."""
    with Store(store_path) as store:
        for number in (1, 2):
            store.put_thread(customer_thread(number))
        store.flush()
        store.archive(list(store.threads.values()))
        store.flush()
    [month] = archive_folder(store_path).glob("*.jsonl")
    return month.read_bytes()


def cut_inside_customer_text(data: bytes) -> bytes:
    """Cut short in the middle of a line, inside the customer's name: a copy or a disk that gave up."""
    return data[:data.index(b"Zebrowski") + 5]


# Each damage: how to make it from the good file's bytes. Every one of them carries customer text.
DAMAGES = {
    "empty": lambda good: b"",
    "blank": lambda good: b"\n  \n",
    "cut-mid-line": cut_inside_customer_text,
    "garbage-text": lambda good: f"{NAME} wrote about {SUBJECT}\n".encode(),
    "garbage-bytes": lambda good: good.replace(b"Zebrowski", b"\xff\xfeZebrowski"),
    "wrong-shape-list": lambda good: json.dumps([{"name": NAME, "subject": SUBJECT}]).encode(),
    "wrong-shape-table": lambda good: json.dumps({"threads": [NAME, SUBJECT], "reviews": [NOTE]}).encode(),
    "wrong-field-form": lambda good: good.replace(b'"2026-03-04T09:00:00+00:00"', json.dumps(NAME).encode(), 1),
}


@contextmanager
def unreadable(path: Path):
    """`path` cannot be read by this process: mode 000, and (as root, who may read anything) a dropped
    effective user id for the time of the check."""
    mode = path.stat().st_mode
    path.chmod(0)
    for lock in path.parent.glob("*.lock"):
        lock.chmod(0o666)  # made by this test as root: the other user may take the lock, just not read the file
    dropped = os.geteuid() == 0
    if dropped:
        os.seteuid(65534)  # nobody
    try:
        yield
    finally:
        if dropped:
            os.seteuid(0)
        path.chmod(mode)


@pytest.fixture
def folder():
    """A folder anybody may enter and write (the unreadable case drops to another user as root)."""
    with tempfile.TemporaryDirectory(prefix="mailesc-damage-") as name:
        os.chmod(name, 0o777)
        yield Path(name)


def assert_refused_quietly(error: StoreError, path: Path, *place: str) -> None:
    message = str(error)
    assert error.exit_code == 65 and not isinstance(error, StoreBusy)
    assert str(path) in message, message
    for word in place:
        assert word in message, message
    for text in CUSTOMER_TEXT:
        assert text not in message, message


def damage(path: Path, good: bytes, how: str) -> bytes:
    bad = DAMAGES[how](good)
    assert bad != good
    path.write_bytes(bad)
    return bad


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock")}


# -- the store ------------------------------------------------------------------------------------------------

STORE_PLACES = {"cut-mid-line": ("at line", "not JSON"), "garbage-bytes": ("line", "UTF-8"),
                "wrong-field-form": ("line",), "empty": ("empty",), "blank": ("empty",),
                "wrong-shape-list": ("at the top",), "wrong-shape-table": ("in table 'threads'",),
                "garbage-text": ("line 1", "not JSON")}


@pytest.mark.parametrize("how", sorted(DAMAGES) + ["unreadable"])
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_a_damaged_store_is_refused_left_untouched_and_never_quoted(folder, how, readonly):
    path = folder / "mailesc.json"
    good = write_store(path)
    bad = good if how == "unreadable" else damage(path, good, how)
    before = files_in(folder)
    with (unreadable(path) if how == "unreadable" else _nothing()), pytest.raises(StoreError) as caught:
        Store(path, readonly=readonly)
    assert_refused_quietly(caught.value, path, *STORE_PLACES.get(how, ("Permission denied",)))
    assert path.read_bytes() == bad and files_in(folder) == before  # no temp file, no new store
    if how != "unreadable":
        assert "untouched" in str(caught.value)


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_breach_lookups_refuse_a_damaged_store_too(folder, how):
    path = folder / "mailesc.json"
    bad = damage(path, write_store(path), how)
    for read in (lambda: load_breach(path, 1), lambda: load_history(path)):
        with pytest.raises(StoreError) as caught:
            read()
        assert_refused_quietly(caught.value, path)
    assert path.read_bytes() == bad


def test_a_new_store_is_made_only_where_there_is_no_file(folder):
    path = folder / "mailesc.json"
    with Store(path) as store:  # no file: a new store
        store.sync["maildir:new"] = {"seen": []}
        store.flush()
    assert path.stat().st_size > 0


def test_a_store_in_use_is_a_temporary_failure_not_damage(folder):
    path = folder / "mailesc.json"
    with Store(path):
        with pytest.raises(StoreBusy) as caught:
            Store(path)
    assert caught.value.exit_code == 75 and str(path) in str(caught.value)


# -- the review file ------------------------------------------------------------------------------------------

REVIEW_DAMAGES = [how for how in sorted(DAMAGES) if how != "wrong-field-form"] + ["wrong-review-form", "unreadable"]


def damage_reviews(path: Path, good: bytes, how: str) -> bytes:
    if how == "wrong-review-form":  # the right shape, but a time that is not one
        bad = good.replace(b'"2026-03-04T09:00:00+00:00"', json.dumps(NAME).encode())
        path.write_bytes(bad)
        return bad
    return good if how == "unreadable" else damage(path, good, how)


@pytest.mark.parametrize("how", REVIEW_DAMAGES)
def test_a_damaged_review_file_is_refused_for_reading_and_for_writing(folder, how):
    store_path = folder / "mailesc.json"
    path = reviews_path(store_path)
    bad = damage_reviews(path, write_reviews(store_path), how)
    before = files_in(folder)
    entry = ReviewEntry(breach=2, at=T0, by="bob", action="review", cause="staffing")
    for attempt in (lambda: Reviews.load(store_path), lambda: record_review(store_path, entry, ("staffing",))):
        with (unreadable(path) if how == "unreadable" else _nothing()), pytest.raises(StoreError) as caught:
            attempt()
        assert_refused_quietly(caught.value, path)
        assert "review file" in str(caught.value)
    assert path.read_bytes() == bad and files_in(folder) == before


# -- the archive ----------------------------------------------------------------------------------------------

ARCHIVE_DAMAGES = {
    "empty": (lambda good: b"", "empty"),
    "garbage-line": (lambda good: good + f"{NAME}: {SUBJECT}\n".encode(), "line 3"),
    "garbage-bytes": (lambda good: good.replace(NAME.encode(), b"\xff" + NAME.encode(), 1), "line 1"),
    "wrong-shape": (lambda good: good + json.dumps({"customer": NAME}).encode() + b"\n", "line 3"),
    "wrong-field-form": (lambda good: good.replace(b'"2026-03-04T09:00:00+00:00"', json.dumps(NAME).encode(), 1),
                         "line 1"),
}


@pytest.mark.parametrize("how", sorted(ARCHIVE_DAMAGES) + ["unreadable"])
def test_a_damaged_archive_file_is_refused_and_never_quoted(folder, how):
    store_path = folder / "mailesc.json"
    good = write_archive(store_path)
    [path] = archive_folder(store_path).glob("*.jsonl")
    store_path.unlink()  # only the archive is under test: no live store beside it
    bad = good
    if how != "unreadable":
        make, place = ARCHIVE_DAMAGES[how]
        bad = make(good)
        path.write_bytes(bad)
    before = files_in(folder)
    reads = [lambda: list(read_archive(store_path)), lambda: load_history(store_path)]
    if how in ("empty", "unreadable"):  # `breaches show` parses only the lines that name its breach
        reads.append(lambda: load_breach(store_path, 99))
    for read in reads:
        with (unreadable(path) if how == "unreadable" else _nothing()), pytest.raises(StoreError) as caught:
            read()
        assert_refused_quietly(caught.value, path, "Permission denied" if how == "unreadable" else place)
    assert path.read_bytes() == bad and files_in(folder) == before


@pytest.mark.parametrize("keep", [0.5, 4 / 1000], ids=["half-a-line", "a-few-bytes"])
@pytest.mark.parametrize("then_appended", [False, True])
def test_an_archive_line_cut_by_a_crash_is_skipped_not_refused(folder, keep, then_appended):
    """The one cut the archive expects: its thread was still in the live store when the write broke off (and
    the next archiving starts a new line after it)."""
    store_path = folder / "mailesc.json"
    good = write_archive(store_path)
    [path] = archive_folder(store_path).glob("*.jsonl")
    first, second = good.splitlines(keepends=True)
    path.write_bytes(first + second[:max(1, int(len(second) * keep))] + (b"\n" + first if then_appended else b""))
    [(thread, _)] = list(read_archive(store_path))
    assert thread.id == json.loads(first)["thread"]["id"]


def test_a_new_archive_month_is_never_an_empty_file(folder):
    """A month's file appears whole (written beside, renamed into place), so an empty one is always damage."""
    store_path = folder / "mailesc.json"
    write_archive(store_path)
    [path] = archive_folder(store_path).glob("*.jsonl")
    assert len(path.read_bytes().splitlines()) == 2
    assert sorted(p.name for p in archive_folder(store_path).iterdir()) == [path.name]  # no temp file left


@contextmanager
def _nothing():
    yield


# -- breach lists and reports, which read parts of records without building them ---------------------------------

def write_breach_archive(store_path: Path) -> tuple[bytes, bytes]:
    """(the live store, its archive month): a thread with a breach archived, another thread with one still live."""
    with Store(store_path) as store:
        for number in (1, 2):
            thread = customer_thread(number)
            breach = store.new_breach(thread=thread.id, customer=ADDRESS, subject=SUBJECT, policy="default",
                                      received_at=T0, due_at=T0 + timedelta(hours=1))
            thread.breach_ids[0] = breach.id
            store.put_thread(thread)
        store.flush()
        store.archive([store.threads[customer_thread(1).id]])
        store.flush()
    [month] = archive_folder(store_path).glob("*.jsonl")
    return store_path.read_bytes(), month.read_bytes()


# which file, how it is damaged; each damage had reached the user as a Python traceback (a list for an id is no
# dict key; an object for the breaches of an archive line was looked up as a whole line)
PART_DAMAGES = {
    "live-breach-id-a-list": ("live", lambda good: good.replace(b'{"id":2,', b'{"id":[2],', 1)),
    "live-breach-id-an-object": ("live", lambda good: good.replace(b'{"id":2,', b'{"id":{"n":2},', 1)),
    "archived-breaches-an-object": ("archive", lambda good: good[:good.rindex(b',"breaches":[')]
                                    + b',"breaches":{"id":1}}\n'),
}


@pytest.mark.parametrize("how", sorted(PART_DAMAGES))
def test_breach_lists_and_reports_refuse_a_damaged_part_of_a_record(folder, how):
    from mailesc.reporting.queries import BreachFilter

    store_path = folder / "mailesc.json"
    live, archived = write_breach_archive(store_path)
    [month] = archive_folder(store_path).glob("*.jsonl")
    which, make = PART_DAMAGES[how]
    path, good = (store_path, live) if which == "live" else (month, archived)
    bad = make(good)
    assert bad != good
    path.write_bytes(bad)
    store = Store(store_path, readonly=True, live=False)  # as `breaches list` and `report` open it
    reads = [lambda: store.select_breaches(BreachFilter(), T0, timedelta(days=7)), lambda: store.report_records()]
    for read in reads:
        with pytest.raises(StoreError) as caught:
            read()
        assert_refused_quietly(caught.value, path)
    assert path.read_bytes() == bad
