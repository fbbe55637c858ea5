"""The file store's thread index (mailesc/stores/file_index.py): threads read from the file only when asked for,
and an index that is trusted only when it matches the thread records beside it; otherwise the store is read
whole, as before, and the index is written anew."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from tinydb import TinyDB

from mailesc.agenda import Agenda
from mailesc.model import MailKind, QueuedMail
from mailesc.store import Store
from mailesc.stores.file_index import INDEX_RECORD
from tests.unit.test_store import T0, make_thread

FP = "fingerprint-of-the-policies"


def threads_of(store: Store) -> dict:
    return {thread_id: thread for thread_id, thread in sorted(store.threads.items())}


def written(path, count: int = 5, *, untimed: int | None = None, notice: int | None = None):
    """A store with `count` threads, an agenda kept with it (thread n wakes at T0 + n hours; the last one is
    changed and not yet evaluated), one thread its policy cannot time and one with an unsent notice."""
    with Store(path) as store:
        agenda = Agenda()
        for n in range(count):
            thread = make_thread(n)
            if n == untimed:
                thread.clock_error = "the calendar never opens"
            if n == notice:
                thread.notices.append(QueuedMail(kind=MailKind.WARNING, at=T0, to=["m@example.test"],
                                                 message_id=f"<w{n}@x>", template="warning"))
            store.put_thread(thread)
            agenda.wake(thread.id, T0 + timedelta(hours=n))
        agenda.changed(make_thread(count - 1).id)
        store._default.keep_agenda(agenda, FP)
        store.flush()
        return threads_of(store)


def index_line(path) -> int:
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines) if f'"name":"{INDEX_RECORD}"' in line)


def test_a_store_with_a_matching_index_reads_no_thread_until_one_is_asked_for(tmp_path):
    path = tmp_path / "mailesc.json"
    before = written(path, untimed=1, notice=2)
    with Store(path) as store:
        box = store._default
        assert box.index is not None and box.threads.read() == []
        assert sorted(box.threads) == sorted(before) and len(box.threads) == 5
        wakes, changed = box.agenda_state(FP)
        assert wakes == {make_thread(n).id: T0 + timedelta(hours=n) for n in range(5)}
        assert changed == {make_thread(4).id}
        assert [t.id for t in box.untimed_threads()] == [make_thread(1).id]
        assert box.notice_owners() == {make_thread(2).id}
        assert [q.mail.message_id for q in box.pending_mails()] == ["<w2@x>"]
        assert len(box.threads.read()) == 2  # the two it was asked for, no other
        assert box.threads[make_thread(3).id] == before[make_thread(3).id]
        assert box.agenda_state("other policies") is None  # their wake-ups are not the stored ones
        assert threads_of(store) == before  # read one by one, each the thread that was written


def test_unchanged_unread_threads_are_written_back_as_they_were_and_the_index_follows_changes(tmp_path):
    path = tmp_path / "mailesc.json"
    before = written(path)
    with Store(path) as store:
        box = store._default
        thread = box.threads[make_thread(0).id]
        thread.clock_error = "no hours"
        box.put_thread(thread)
        agenda = Agenda()
        agenda.wake(make_thread(3).id, T0)
        box.keep_agenda(agenda, "new")
        store.flush()
        assert len(box.threads.read()) == 1
    with Store(path) as store:
        box = store._default
        assert box.index is not None and box.threads.read() == []
        assert box.agenda_state("new") == ({make_thread(3).id: T0}, set())
        assert [t.id for t in box.untimed_threads()] == [make_thread(0).id]
        assert threads_of(store) == {**before, thread.id: thread}


def damage_index(path, change) -> None:
    lines = path.read_text().splitlines(keepends=True)
    number = index_line(path)
    key, _, text = lines[number].rstrip(",\n").partition(":")
    doc = json.loads(text)
    change(doc["state"])
    lines[number] = f"{key}:{json.dumps(doc, separators=(',', ':'))}" + lines[number][len(lines[number].rstrip(",\n")):]
    path.write_text("".join(lines))


def edit_a_thread(path) -> None:
    """Change a thread record as somebody with a text editor or TinyDB could: its text no longer matches the
    index's checksum."""
    lines = path.read_text().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines) if "<root2@customer.example>" in line and '"messages"' in line)
    lines[number] = lines[number].replace('"policy":"default"', '"policy":"edited"')
    path.write_text("".join(lines))


def drop_index(path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    number = index_line(path)
    if lines[number].endswith(",\n"):
        del lines[number]
    else:  # the table's last record: the one before it ends the table now
        del lines[number]
        lines[number - 1] = lines[number - 1].rstrip(",\n") + "\n"
    path.write_text("".join(lines))


def box(state: dict) -> dict:
    return state["boxes"]["default"]


UNTRUSTED = {
    "missing (a store an older mailesc wrote)": drop_index,
    "of another version": lambda path: damage_index(path, lambda state: state.update(version=99)),
    "not matching its threads": edit_a_thread,
    "naming a thread that is not there":
        lambda path: damage_index(path, lambda s: box(s)["threads"].append([999, "<x@y>", 20, 5])),
    "missing a thread": lambda path: damage_index(path, lambda s: box(s)["threads"].pop()),
    "naming a place outside the threads table":
        lambda path: damage_index(path, lambda s: box(s)["threads"][0].__setitem__(2, s["region"][1] + 5)),
    "damaged (a wake-up that is no time)": lambda path: damage_index(path, lambda s: box(s)["wakes"].update(x="soon")),
    "damaged (not an object)": lambda path: damage_index(path, lambda s: box(s).update(threads="all")),
    "damaged (no region)": lambda path: damage_index(path, lambda s: s.pop("region")),
    "a wrong checksum": lambda path: damage_index(path, lambda s: s["region"].__setitem__(3, s["region"][3] + 1)),
}


@pytest.mark.parametrize("untrust", UNTRUSTED.values(), ids=UNTRUSTED.keys())
def test_an_index_not_to_be_trusted_is_ignored_every_thread_read_and_the_index_written_anew(tmp_path, untrust):
    path = tmp_path / "mailesc.json"
    before = written(path, untimed=1, notice=2)
    untrust(path)
    with Store(path) as store:
        box = store._default
        assert box.index is None and box.agenda_state(FP) is None  # every clock is evaluated again
        assert len(box.threads.read()) == 5  # read whole, as without an index
        expected = dict(before)
        if untrust is edit_a_thread:
            expected[make_thread(2).id] = replace(before[make_thread(2).id], policy="edited")
        assert threads_of(store) == expected
        assert [t.id for t in box.untimed_threads()] == [make_thread(1).id]  # found by reading the threads
        assert box.notice_owners() == {make_thread(2).id}
        store.flush()  # nothing else changed: the index alone is written anew
    with Store(path) as store:
        box = store._default
        assert box.index is not None and box.threads.read() == []
        assert box.agenda_state(FP) is None  # the rebuilt index has no wake-ups: the next engine evaluates all
        assert [t.id for t in box.untimed_threads()] == [make_thread(1).id]
        assert threads_of(store) == expected


def test_thread_records_swapped_in_the_file_are_each_still_read_as_themselves(tmp_path):
    """Two records swapped: the index no longer matches the bytes of the threads table, so the threads are read
    whole; asking for a thread never gives another thread's data."""
    path = tmp_path / "mailesc.json"
    written(path, count=2)
    lines = path.read_text().splitlines(keepends=True)
    first, second = (n for n, line in enumerate(lines) if line.startswith(('"1":', '"2":')) and '"messages"' in line)
    text = lambda line: line.partition(":")[2].rstrip(",\n")  # noqa: E731
    a, b = text(lines[first]), text(lines[second])
    lines[first] = lines[first].replace(a, b)
    lines[second] = lines[second].replace(b, a)
    path.write_text("".join(lines))
    with Store(path) as store:
        assert store._default.index is None
        assert sorted(store.threads) == sorted([make_thread(0).id, make_thread(1).id])
        for thread_id in list(store.threads):
            assert store.threads[thread_id] == make_thread(int(thread_id[5]))


def test_the_store_with_its_index_stays_readable_by_tinydb(tmp_path):
    path = tmp_path / "mailesc.json"
    before = written(path, untimed=1)
    database = TinyDB(path, access_mode="r")
    try:
        threads = {doc["id"] for doc in database.table("threads").all()}
        index = [doc for doc in database.table("meta").all() if doc["name"] == INDEX_RECORD]
    finally:
        database.close()
    assert threads == set(before)
    assert len(index) == 1 and box(index[0]["state"])["untimed"] == [make_thread(1).id]


def test_a_read_only_store_reads_every_thread_and_hides_the_index(tmp_path):
    path = tmp_path / "mailesc.json"
    before = written(path)
    with Store(path, readonly=True) as store:
        assert threads_of(store) == before and len(store._default.threads.read()) == 5
        assert INDEX_RECORD not in store.meta


def test_a_thread_archived_leaves_the_index(tmp_path):
    path = tmp_path / "mailesc.json"
    written(path, notice=2)
    with Store(path) as store:
        store.archive([store.threads[make_thread(2).id]])
        store.flush()
    with Store(path) as store:
        box = store._default
        assert box.index is not None and make_thread(2).id not in box.threads
        assert box.notice_owners() == set() and make_thread(2).id not in box.agenda_state(FP)[0]


def test_the_last_archive_look_is_remembered_across_processes(tmp_path):
    path = tmp_path / "mailesc.json"
    written(path)
    with Store(path) as store:
        assert store._default.last_archived() is None
        store._default.archive_looked(T0)
        store.flush()
    with Store(path) as store:
        assert store._default.last_archived() == T0
