"""What the stage tests share: one mailbox's state on a real file store, rules built in code, messages built
as a source hands them over, and a source that holds its messages in memory.

A stage test gives a stage real records and checks the records it leaves: no wire is crossed and nothing is
mocked."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import datetime, timedelta, timezone

from mailesc.cycle import who_is_who
from mailesc.model import Kind, RawMessage, Thread, ThreadMessage
from mailesc.policies import Level, Match, Policies, Rule
from mailesc.stages.state import MailboxState, mailbox_state
from mailesc.testing.mail import make_mail

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
H = timedelta(hours=1)
SECRET = b"stage test secret"
OWN = "escalations@example.test"
TEAM = ("*@example.test",)
CUSTOMER = "pat@customer.example"
MANAGER, DIRECTOR = "manager@example.test", "director@example.test"
LADDER = (Level(1, timedelta(0), (MANAGER,)), Level(2, 2 * H, (DIRECTOR,)))


def rule(**changes) -> Rule:
    """A rule for every message: first response within an hour (always open), level 1 at the deadline, level 2
    two hours after it."""
    return Rule(**{"name": "standard", "source": "test", "match": Match(), "first_response": H, "escalate": LADDER,
                   **changes})


def state_of(store, *rules: Rule) -> MailboxState:
    """The state a start makes of the default mailbox of `store` (a mailesc.store.Store)."""
    policies = Policies(rules=rules or (rule(),))
    return mailbox_state(store.box("default"), policies, who_is_who(policies, TEAM, f"Escalations <{OWN}>", SECRET),
                         SECRET)


def raw(arrived: datetime, *, sender: str = CUSTOMER, key: str | None = None, folder: str = "INBOX",
        **mail) -> RawMessage:
    """A message as a source hands it over, arrived at `arrived` (`mail`: make_mail's keywords)."""
    data, message_id = make_mail(sender=sender, date=arrived, **mail)
    return RawMessage(key=key or f"{folder}:{message_id}", folder=folder, data=data, arrived=arrived)


def thread_of(customer_at: datetime, *, due_at: datetime | None = None, answered_at: datetime | None = None,
              thread_id: str = "<t1@customer.example>", policy: str | None = "standard") -> Thread:
    """A thread as intake leaves it: a customer's message (clocked by `policy`, due an hour later unless
    given), and the team's answer if `answered_at`."""
    messages = [ThreadMessage(key="k1", folder="INBOX", message_id=thread_id, kind=Kind.CUSTOMER, sender=CUSTOMER,
                              arrived=customer_at, subject="Cannot log in")]
    if answered_at is not None:
        messages.append(ThreadMessage(key="k2", folder="INBOX", message_id="<a1@example.test>", kind=Kind.TEAM,
                                      sender="agent@example.test", arrived=answered_at, subject="Cannot log in"))
    return Thread(id=thread_id, subject="cannot log in", ids={m.message_id for m in messages}, messages=messages,
                  policy=policy, due_at=due_at or (customer_at + H if policy else None))


def put(state: MailboxState, thread: Thread) -> Thread:
    """Into the box and the indexes, as intake puts a thread that changed."""
    state.store.put_thread(thread)
    state.index.add(thread)
    state.agenda.changed(thread.id)
    return thread


class MemorySource:
    """A mailbox held in memory: poll() hands over each message once, fetch() gives any of them again."""

    def __init__(self, raws: Iterable[RawMessage] = ()):
        self.raws = {item.key: item for item in raws}
        self._handed: set[str] = set()

    def poll(self, sync: MutableMapping[str, dict]) -> list[RawMessage]:
        new = [item for key, item in self.raws.items() if key not in self._handed]
        self._handed |= {item.key for item in new}
        return new

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        return {key: self.raws[key].data for key in keys if key in self.raws}

    def describe(self) -> dict:
        return {"kind": "memory", "messages": len(self.raws)}

    def close(self) -> None:
        pass
