"""Store: the JSON state file survives flush/close/reopen, is locked, private, and never overwritten when damaged."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.errors import StoreError
from mailesc.model import Delivery, EscalationRecord, Kind, Quarantined, Status, Thread, ThreadMessage
from mailesc.store import Store

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))


def make_thread(n: int = 1) -> Thread:
    root = f"<root{n}@customer.example>"
    return Thread(
        id=root,
        subject="login problem",
        ids={root, f"<reply{n}@example.test>", "<missing-parent@x>"},
        messages=[
            ThreadMessage(key=f"INBOX/{n}", folder="INBOX", message_id=root, kind=Kind.CUSTOMER,
                          sender="alice@customer.example", arrived=T0, subject="Login problem", name="Alice Müller"),
            ThreadMessage(key=f"Sent/{n}", folder="Sent", message_id=f"<reply{n}@example.test>", kind=Kind.TEAM,
                          sender="bob@example.test", arrived=datetime(2024, 3, 4, 15, 0, tzinfo=CET),
                          subject="Re: Login problem"),
            ThreadMessage(key=f"INBOX/{n}b", folder="INBOX", message_id=f"<ooo{n}@x>", kind=Kind.AUTO,
                          sender="mailer-daemon@x", arrived=T0 + timedelta(minutes=1)),
        ],
        policy="default",
        due_at=T0 + timedelta(hours=4),
        breach_ids={},
    )


def fill(store: Store):
    thread = make_thread()
    breach = store.new_breach(thread=thread.id, customer="alice@customer.example", subject="Login problem",
                              policy="default", received_at=T0, due_at=T0 + timedelta(hours=4))
    breach.escalations.extend([
        EscalationRecord(level=1, at=T0 + timedelta(hours=4), to=["manager@example.test"],
                         message_id="<mailesc.1.L1@example.test>", delivery=Delivery.SENT,
                         sent_at=T0 + timedelta(hours=4, seconds=3)),
        EscalationRecord(level=2, at=T0 + timedelta(hours=6), to=["director@example.test", "cto@example.test"],
                         message_id="<mailesc.1.L2@example.test>", template="urgent", delivery=Delivery.FAILED,
                         error="550 no such user"),
    ])
    thread.breach_ids[0] = breach.id
    store.put_thread(thread)
    store.put_breach(breach)
    closed = store.new_breach(thread="<root2@x>", customer="carol@customer.example", subject="Invoice",
                              policy="vip", received_at=T0, due_at=T0 + timedelta(hours=1),
                              status=Status.RESPONDED_LATE, responded_at=T0 + timedelta(hours=2))
    store.sync["imap:INBOX"] = {"uidvalidity": 1700000000, "last_uid": 42}
    store.sync["maildir:new"] = {"seen": ["1.a", "2.b"]}
    store.put_quarantined(Quarantined(key="INBOX/99", folder="INBOX", reason="the message is empty", at=T0))
    return thread, breach, closed


def test_round_trip_through_flush_close_and_reopen(tmp_path):
    path = tmp_path / "state" / "mailesc.json"
    with Store(path) as store:
        thread, breach, closed = fill(store)
        store.flush()
    with Store(path) as again:
        assert again.threads == {thread.id: thread}
        assert again.breaches == {breach.id: breach, closed.id: closed}
        assert again.breaches[breach.id].escalated_levels() == {1, 2}
        assert dict(again.sync) == {"imap:INBOX": {"uidvalidity": 1700000000, "last_uid": 42},
                                    "maildir:new": {"seen": ["1.a", "2.b"]}}
        assert again.quarantine == {"INBOX/99": Quarantined(key="INBOX/99", folder="INBOX",
                                                            reason="the message is empty", at=T0)}
        loaded = again.threads[thread.id].messages
        assert [m.kind for m in loaded] == [Kind.CUSTOMER, Kind.TEAM, Kind.AUTO]
        assert loaded[1].arrived.utcoffset() == timedelta(hours=1)  # offsets are kept, not just the instant


def test_changes_after_reopen_replace_records_instead_of_adding(tmp_path):
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        thread, breach, _ = fill(store)
        store.flush()
    with Store(path) as store:
        changed = store.threads[thread.id]
        changed.messages.append(ThreadMessage(key="INBOX/7", folder="INBOX", message_id="<late@x>",
                                              kind=Kind.CUSTOMER, sender="alice@customer.example",
                                              arrived=T0 + timedelta(days=1)))
        store.put_thread(changed)
        store.put_thread(make_thread(2))
        store.breaches[breach.id].escalations[1].delivery = Delivery.SENT
        store.put_breach(store.breaches[breach.id])
        store.sync["imap:INBOX"] = {"uidvalidity": 1700000000, "last_uid": 43}
        third = store.new_breach(thread="<root3@x>", customer="d@x", subject="s", policy="p", received_at=T0,
                                 due_at=T0)
        store.flush()
    with Store(path) as store:
        assert len(store.threads) == 2
        assert [m.message_id for m in store.threads[thread.id].messages][-1] == "<late@x>"
        assert store.breaches[breach.id].escalations[1].delivery is Delivery.SENT
        assert store.sync["imap:INBOX"]["last_uid"] == 43
        assert sorted(store.breaches) == [1, 2, 3] and third.id == 3
    data = json.loads(path.read_text(encoding="utf-8"))
    assert len(data["threads"]) == 2 and len(data["sync"]) == 2 and len(data["breaches"]) == 3


def test_nothing_is_written_before_flush(tmp_path):
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        fill(store)
    with Store(path) as again:
        assert again.threads == {} and again.breaches == {} and len(again.sync) == 0


def test_sync_bookmarks_cannot_be_deleted(tmp_path):
    with Store(tmp_path / "mailesc.json") as store:
        store.sync["imap:INBOX"] = {"last_uid": 1}
        with pytest.raises(StoreError):
            del store.sync["imap:INBOX"]


def test_a_second_writer_on_the_same_path_is_refused(tmp_path):
    path = tmp_path / "mailesc.json"
    first = Store(path)
    try:
        with pytest.raises(StoreError, match="another mailesc process"):
            Store(path)
        with Store(path, readonly=True) as reader:  # a report can still read while the daemon runs
            assert reader.threads == {}
            with pytest.raises(StoreError):
                reader.flush()
    finally:
        first.close()
    Store(path).close()  # once the first writer has closed, the lock is free again


@pytest.mark.parametrize("damage", [
    b'{"threads": {"1": {"id": "<a@x>", ',  # cut off mid-write by something else
    b"\x00\x00\x00\x00",
    b"not json at all\n",
    b'{"threads": {"1": {"id": "<a@x>"}}}',  # valid JSON, but not a record mailesc wrote
], ids=["truncated", "nul-bytes", "text", "record-missing-fields"])
def test_a_damaged_store_raises_and_is_left_byte_for_byte_untouched(tmp_path, damage):
    path = tmp_path / "mailesc.json"
    path.write_bytes(damage)
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert str(path) in str(caught.value) and "untouched" in str(caught.value)
    assert path.read_bytes() == damage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailesc.json", "mailesc.json.lock"]  # no temp files


def test_only_a_missing_file_is_a_new_store(tmp_path):
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        assert store.threads == {} and store.breaches == {}
    assert not path.exists()  # nothing is written before there is something to keep


def test_the_store_file_is_private_and_no_temporary_file_is_left(tmp_path):
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        fill(store)
        store.flush()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o644)  # somebody loosened it; the next write makes it private again
        store.put_thread(make_thread(2))
        store.flush()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailesc.json", "mailesc.json.lock"]


def test_a_writer_removes_temp_files_a_crash_left_behind_and_a_reader_leaves_them(tmp_path):
    path = tmp_path / "mailesc.json"
    leftover = tmp_path / ".mailesc.json.k3j2h1"
    leftover.write_text('{"threads": {"1": {"id": "<half')  # a write cut short by SIGKILL
    with Store(path, readonly=True):
        assert leftover.exists()
    with Store(path):
        assert not leftover.exists()
    assert (tmp_path / "mailesc.json.lock").exists()  # the lock file is not a temp file


def test_the_store_file_is_tinydb_json_with_one_document_a_line_and_a_cut_one_is_refused(tmp_path):
    import json as _json

    import pytest as _pytest
    from tinydb import TinyDB

    from mailesc.errors import StoreError
    from mailesc.store import Store

    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        for number in range(3):
            store.sync[f"folder{number}"] = {"last_uid": number}
        store.flush()
    text = path.read_text()
    assert _json.loads(text)["sync"] and len(TinyDB(str(path)).table("sync")) == 3
    assert len(text.splitlines()) > 6  # a line per document: loading parses one at a time
    with Store(path) as store:
        assert store.sync["folder2"] == {"last_uid": 2}
    path.write_text("\n".join(text.splitlines()[:-1]) + "\n")  # cut at a line end: still refused
    with _pytest.raises(StoreError, match="damaged"):
        Store(path)


def test_a_store_written_by_tinydb_itself_is_read_and_rewritten_in_the_line_layout(tmp_path):
    from tinydb import TinyDB

    from mailesc.store import Store

    path = tmp_path / "mailesc.json"
    db = TinyDB(str(path))  # one line, as TinyDB (and mailesc before the line layout) writes it
    db.table("sync").insert({"name": "imap:INBOX", "state": {"uidvalidity": 7, "last_uid": 42}})
    db.close()
    assert len(path.read_text().splitlines()) == 1
    with Store(path) as store:
        assert store.sync["imap:INBOX"] == {"uidvalidity": 7, "last_uid": 42}
        store.sync["imap:Sent"] = {"uidvalidity": 8, "last_uid": 1}
        store.flush()
    assert len(path.read_text().splitlines()) > 1
    assert len(TinyDB(str(path)).table("sync")) == 2


def test_unchanged_records_are_copied_from_the_file_and_no_text_stays_in_memory(tmp_path):
    """A writer keeps where each record's text is in the file, not the text: the file is the copy. Records
    that did not change are written again exactly as they were, across several flushes and reopenings."""
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        thread, breach, closed = fill(store)
        for number in range(2, 40):
            store.put_thread(make_thread(number))
        store.flush()
        assert all(not isinstance(text, str) for texts in store._texts.values() for text in texts.values())
        before = {line for line in path.read_text(encoding="utf-8").splitlines()
                  if "root7@" in line and '"thread_index"' not in line}  # (the index names every thread)
        for round_ in range(3):  # each flush copies from the file the previous one wrote
            changed = store.threads[thread.id]
            changed.messages.append(ThreadMessage(key=f"INBOX/late{round_}", folder="INBOX",
                                                  message_id=f"<late{round_}@x>", kind=Kind.CUSTOMER,
                                                  sender="alice@customer.example",
                                                  arrived=T0 + timedelta(days=1 + round_)))
            store.put_thread(changed)
            store.sync["imap:INBOX"] = {"uidvalidity": 1700000000, "last_uid": 50 + round_}
            store.flush()
        after = {line for line in path.read_text(encoding="utf-8").splitlines()
                  if "root7@" in line and '"thread_index"' not in line}  # (the index names every thread)
        assert before == after and len(after) == 1
    with Store(path) as again:
        assert len(again.threads) == 39
        assert again.threads[make_thread(7).id] == make_thread(7)
        assert [m.message_id for m in again.threads[thread.id].messages][-1] == "<late2@x>"
        assert again.breaches == {breach.id: breach, closed.id: closed}
        assert again.sync["imap:INBOX"]["last_uid"] == 52
        again.threads.pop(make_thread(5).id)  # removed and changed records after a reopen, from the file's offsets
        again.mark_dirty("threads", ("default", make_thread(5).id))
        again.put_thread(make_thread(40))
        again.flush()
    with Store(path) as last:
        assert make_thread(5).id not in last.threads and last.threads[make_thread(40).id] == make_thread(40)
        assert last.threads[make_thread(39).id] == make_thread(39) and len(last.threads) == 39
    assert json.loads(path.read_text(encoding="utf-8"))["threads"]  # still plain JSON


def test_a_record_written_in_another_form_is_kept_as_it_is_until_it_changes(tmp_path):
    """An unchanged record is copied, not serialised again: a record an older mailesc (or a person) wrote with
    spaces and another key order keeps that form, and is still read the same."""
    path = tmp_path / "mailesc.json"
    with Store(path) as store:
        store.sync["imap:INBOX"] = {"uidvalidity": 1, "last_uid": 2}
        store.sync["imap:Sent"] = {"uidvalidity": 3, "last_uid": 4}
        store.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    odd = next(i for i, line in enumerate(lines) if "imap:INBOX" in line)
    doc_id, comma = lines[odd].split(":", 1)[0], "," if lines[odd].endswith(",") else ""
    lines[odd] = f'{doc_id}:{{ "state": {{"last_uid": 2, "uidvalidity": 1}}, "name": "imap:INBOX" }}{comma}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Store(path) as store:
        assert store.sync["imap:INBOX"] == {"uidvalidity": 1, "last_uid": 2}
        store.sync["imap:Sent"] = {"uidvalidity": 3, "last_uid": 5}
        store.flush()
    text = path.read_text(encoding="utf-8")
    assert '{ "state": {"last_uid": 2, "uidvalidity": 1}, "name": "imap:INBOX" }' in text
    with Store(path, readonly=True) as store:
        assert dict(store.sync) == {"imap:INBOX": {"uidvalidity": 1, "last_uid": 2},
                                    "imap:Sent": {"uidvalidity": 3, "last_uid": 5}}


@pytest.mark.parametrize("seed", range(6))
def test_any_mix_of_changed_added_removed_and_unchanged_records_is_written_back_whole(tmp_path, seed):
    """Runs of unchanged records are copied from the file as blocks: whichever records change, come or go
    between two writes (the first, the last, neighbours, every other one), what is read back is what was held."""
    import random

    chance = random.Random(seed)
    path = tmp_path / "mailesc.json"
    expected: dict[str, Thread] = {}
    with Store(path) as store:
        for number in range(1, 30):
            store.put_thread(make_thread(number))
            expected[make_thread(number).id] = make_thread(number)
        store.flush()
        next_number = 30
        for round_ in range(5):
            for thread_id in list(expected):
                roll = chance.random()
                if roll < 0.15:
                    del store.threads[thread_id], expected[thread_id]
                    store.mark_dirty("threads", ("default", thread_id))
                elif roll < 0.3:
                    store.threads[thread_id].subject = f"changed in round {round_}"
                    store.put_thread(store.threads[thread_id])
                    expected[thread_id] = store.threads[thread_id]
            for _ in range(chance.randrange(4)):
                store.put_thread(make_thread(next_number))
                expected[make_thread(next_number).id] = make_thread(next_number)
                next_number += 1
            store.sync[f"folder{round_ % 2}"] = {"last_uid": round_}
            store.flush()
            with Store(path, readonly=True) as again:
                assert again.threads == expected
                assert again.sync[f"folder{round_ % 2}"] == {"last_uid": round_}
