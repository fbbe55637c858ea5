"""The file store read in bulk for `breaches list` and `report` (mailesc/store_bulk.py) reads exactly what the
careful line-by-line readers read (store.breach_documents, store.report_documents): the same breach documents
and thread summaries on a store with everything in it (two mailboxes, escalations, archived threads, a thread
archived twice, a live copy of an archived thread), and on every damaged or unusual file either the same
records or the same refusal, word for word (the bulk reader hands such a file to the careful one)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc import store_bulk
from mailesc.errors import StoreError
from mailesc.model import Delivery, Kind, MailKind, QueuedMail, Thread, ThreadMessage
from mailesc.reporting.queries import BreachFilter, checked_breach
from mailesc.store import FACTS_KEY, Store, archive_folder, breach_documents, report_documents
from tests.unit.test_store_damage import ARCHIVE_DAMAGES, DAMAGES, write_archive, write_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=60)
PERIOD = timedelta(days=14)


def thread(number: int, mailbox: str = "default", answered: bool = True) -> Thread:
    root = f"<t{number}@customer.example>"
    arrived = T0 + timedelta(days=number)
    messages = [ThreadMessage(key=f"INBOX/{number}", folder="INBOX", message_id=root, kind=Kind.CUSTOMER,
                              sender=f"c{number}@customer.example", arrived=arrived, subject=f"case {number}")]
    if answered:
        messages.append(ThreadMessage(key=f"Sent/{number}", folder="Sent", message_id=f"<r{number}@team.example>",
                                      kind=Kind.TEAM, sender="agent@team.example",
                                      arrived=arrived + timedelta(hours=9)))
    return Thread(id=root, subject=f"case {number}", ids={root}, policy="default", due_at=arrived + timedelta(hours=4),
                  messages=messages, mailbox=mailbox, response_hours=9.0 if answered else None)


def rich_store(path: Path) -> None:
    """Breaches in two mailboxes, one with an escalation; two archive months, a thread archived twice (its
    later copy with a newer breach status) and one archived thread still (again) in the live store."""
    with Store(path) as store:
        threads, breaches = [], {}
        for number in range(1, 9):
            mailbox = "billing" if number % 3 == 0 else "default"
            t = thread(number + (31 if number > 4 else 0), mailbox, answered=number != 2)
            breach = store.box(mailbox).new_breach(thread=t.id, customer=t.messages[0].sender, subject=t.subject,
                                                   policy="default", received_at=t.messages[0].arrived,
                                                   due_at=t.due_at)
            if number == 1:
                breach.escalations.append(QueuedMail(kind=MailKind.ESCALATION.value, message_id="<e1@mailesc>",
                                                     to=["boss@team.example"], at=t.due_at, template="escalation",
                                                     level=1, delivery=Delivery.SENT, sent_at=t.due_at))
            t.breach_ids[0] = breach.id
            store.box(mailbox).put_thread(t)
            store.box(mailbox).put_breach(breach)
            threads.append(t)
            breaches[t.id] = breach
        store.flush()
        for name in ("default", "billing"):
            store.box(name).archive([t for t in threads[:5] if t.mailbox == name])
        store.flush()
        again = threads[0]
        for status in ("responded_late", "open"):  # archived again with a newer status, then live once more
            breaches[again.id].status = status
            store.put_thread(again)
            store.put_breach(breaches[again.id])
            store.flush()
            if status != "open":
                store.archive([again])
                store.flush()


def careful(path: Path, facts: bool):
    """What the careful readers give: (summaries, breach documents by id), or the refusal's message."""
    try:
        docs = {key: checked_breach(doc, f"at {where}").doc for key, (doc, where) in breach_documents(path).items()}
        summaries = [item for item, summary, _where in report_documents(path)] if facts else []
        return summaries, docs
    except StoreError as error:
        return str(error)


def bulk(path: Path, facts: bool):
    """What the bulk reader gives, or None when it hands the store to the careful readers."""
    read = store_bulk.records(path, sorted(archive_folder(path).glob("*.jsonl")), FACTS_KEY if facts else None)
    if read is None:
        return None
    summaries, docs = read
    return summaries, {key: checked_breach(doc, "").doc for key, doc in docs.items()}


def listed(path: Path):
    """What `breaches list` and `report` get through the store, or the refusal's message."""
    try:
        with Store(path, readonly=True, live=False) as store:
            selected, _reviews, recorded = store.select_breaches(BreachFilter(), NOW, PERIOD)
            records = store.report_records()
            return [b.doc for b in selected], recorded, records.threads, sorted(records.breaches)
    except StoreError as error:
        return str(error)


def test_bulk_reads_exactly_what_the_careful_readers_read(tmp_path):
    path = tmp_path / "mailesc.json"
    rich_store(path)
    assert len(list(archive_folder(path).glob("*.jsonl"))) == 2
    for facts in (False, True):
        read = bulk(path, facts)
        assert read is not None, "a store mailesc wrote is read in bulk"
        assert read == careful(path, facts)
    summaries, docs = bulk(path, True)
    assert len(docs) == 8 and {d.get("mailbox", "default") for d in docs.values()} == {"default", "billing"}
    assert sum(1 for d in docs.values() if d["escalations"]) == 1
    assert len(summaries) == 8  # the thread archived twice and live again counted once
    assert sum(1 for s in summaries if s["responded"] is None) == 1


def test_a_thread_written_before_summaries_were_kept_is_read_the_careful_way(tmp_path):
    path = tmp_path / "mailesc.json"
    rich_store(path)
    lines = path.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if f',"{FACTS_KEY}":' in line)
    doc_id, _, text = lines[number].partition(":")
    doc = json.loads(text.rstrip().rstrip(","))
    del doc[FACTS_KEY]
    comma = "," if text.rstrip().endswith(",") else ""
    lines[number] = f"{doc_id}:{json.dumps(doc, separators=(',', ':'))}{comma}\n"
    path.write_text("".join(lines))
    assert bulk(path, True) is None and bulk(path, False) is not None  # a breach list still reads in bulk
    _selected, _recorded, threads, _breaches = listed(path)
    assert len(threads) == 8


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_a_damaged_live_store_gives_the_same_answer_both_ways(tmp_path, how):
    path = tmp_path / "mailesc.json"
    good = write_store(path)
    path.write_bytes(DAMAGES[how](good))
    for facts in (False, True):
        expected, read = careful(path, facts), bulk(path, facts)
        assert read is None or read == expected, how
    result = listed(path)
    if isinstance(result, str):
        assert result in (careful(path, False), careful(path, True))
    else:
        assert result[0] == list(careful(path, False)[1].values())


@pytest.mark.parametrize("how", sorted(ARCHIVE_DAMAGES) + ["cut-by-a-crash", "trailing-blank"])
def test_a_damaged_archive_gives_the_same_answer_both_ways(tmp_path, how):
    path = tmp_path / "mailesc.json"
    good = write_archive(path)
    [month] = archive_folder(path).glob("*.jsonl")
    if how == "cut-by-a-crash":
        first, second = good.splitlines(keepends=True)
        bad = first + second[:len(second) // 2]
    elif how == "trailing-blank":
        bad = good + b"\n"
    else:
        bad = ARCHIVE_DAMAGES[how][0](good)
    month.write_bytes(bad)
    for facts in (False, True):
        read = bulk(path, facts)
        assert read is None or read == careful(path, facts), how
    if how != "wrong-field-form":
        assert bulk(path, False) is None  # each of these goes to the careful reader
    result = listed(path)
    expected = careful(path, True)
    if isinstance(expected, str):
        assert result == expected
    else:
        assert not isinstance(result, str) and len(result[2]) == len(expected[0])
