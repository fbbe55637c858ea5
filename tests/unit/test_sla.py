"""evaluate(thread, rule, now): where a thread's first-response clock stands (the first of its clocks)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailesc.model import Kind, Thread, ThreadMessage
from mailesc.policies import Level, Match, Rule
from mailesc.sla import evaluate

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)  # the customer writes
H = timedelta(hours=1)
M = timedelta(minutes=1)
DUE = T0 + 4 * H  # first response due 4h later

L1 = Level(number=1, after=timedelta(0), to=("manager@example.test",))
L2 = Level(number=2, after=2 * H, to=("director@example.test",))
RULE = Rule(name="default", source="test.toml rule 1", match=Match(), first_response=4 * H, escalate=(L1, L2))
RULE_ONE_LEVEL = Rule(name="one", source="test.toml rule 2", match=Match(), first_response=4 * H, escalate=(L1,))


def tm(kind: Kind, at: datetime, sender: str | None = None) -> ThreadMessage:
    sender = sender or ("alice@customer.example" if kind is Kind.CUSTOMER else "bob@example.test")
    return ThreadMessage(key=f"{kind}-{at:%H%M}", folder="INBOX", message_id=f"<{kind}.{at:%d%H%M}@x>", kind=kind,
                         sender=sender, arrived=at)


def thread(*later: ThreadMessage, due_at: datetime | None = DUE, first_customer_at: datetime = T0) -> Thread:
    messages = [tm(Kind.CUSTOMER, first_customer_at), *later]
    return Thread(id="<root@x>", subject="login problem", messages=messages, policy="default", due_at=due_at)


def levels(verdict) -> list[int]:
    return [step.level.number for step in verdict.due_steps]


CASES = [
    # (id, later messages, now, breached, responded_at, due levels, next_at)
    ("just-arrived", [], T0, False, None, [], DUE),
    ("before-deadline", [], DUE - M, False, None, [], DUE),
    ("exactly-at-deadline", [], DUE, True, None, [1], DUE + 2 * H),
    ("after-deadline", [], DUE + M, True, None, [1], DUE + 2 * H),
    ("3h-after-deadline-both-levels", [], DUE + 3 * H, True, None, [1, 2], None),
    ("exactly-at-level-2", [], DUE + 2 * H, True, None, [1, 2], None),
    ("response-before-deadline", [tm(Kind.TEAM, T0 + H)], DUE + 3 * H, False, T0 + H, [], None),
    ("response-before-deadline-now-earlier", [tm(Kind.TEAM, T0 + H)], T0 + 2 * H, False, T0 + H, [], None),
    ("response-exactly-at-deadline", [tm(Kind.TEAM, DUE)], DUE + 3 * H, False, DUE, [], None),
    ("response-after-deadline", [tm(Kind.TEAM, DUE + H)], DUE + 3 * H, True, DUE + H, [], None),
    ("first-of-two-responses-counts", [tm(Kind.TEAM, DUE + 2 * H), tm(Kind.TEAM, T0 + H)], DUE + 3 * H, False,
     T0 + H, [], None),
    ("internal-forward-is-no-response", [tm(Kind.INTERNAL, T0 + H)], DUE + 3 * H, True, None, [1, 2], None),
    ("auto-reply-is-no-response", [tm(Kind.AUTO, T0 + M)], DUE + 3 * H, True, None, [1, 2], None),
    ("own-escalation-is-no-response", [tm(Kind.OWN, DUE + M)], DUE + 3 * H, True, None, [1, 2], None),
    ("customer-follow-up-is-no-response", [tm(Kind.CUSTOMER, T0 + H)], DUE + M, True, None, [1], DUE + 2 * H),
    ("team-mail-before-customer-is-no-response", [tm(Kind.TEAM, T0 - H)], DUE + 3 * H, True, None, [1, 2], None),
    ("team-mail-same-second-as-customer-is-no-response", [tm(Kind.TEAM, T0)], DUE + M, True, None, [1],
     DUE + 2 * H),
    ("internal-then-team-response", [tm(Kind.INTERNAL, T0 + H), tm(Kind.TEAM, T0 + 5 * H)], DUE + 3 * H, True,
     T0 + 5 * H, [], None),
]


@pytest.mark.parametrize("later, now, breached, responded_at, due_levels, next_at", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_evaluate(later, now, breached, responded_at, due_levels, next_at):
    [verdict] = evaluate(thread(*later), RULE, now)
    assert verdict is not None
    assert verdict.received_at == T0
    assert verdict.due_at == DUE
    assert verdict.breached is breached
    assert verdict.responded_at == responded_at
    assert levels(verdict) == due_levels
    assert verdict.next_at == next_at


def test_due_steps_carry_the_moment_each_level_fell_due():
    [verdict] = evaluate(thread(), RULE, DUE + 3 * H)
    assert [(step.level.to, step.at) for step in verdict.due_steps] == [
        (("manager@example.test",), DUE),
        (("director@example.test",), DUE + 2 * H),
    ]


def test_after_the_last_level_nothing_is_left_to_wait_for():
    [verdict] = evaluate(thread(), RULE_ONE_LEVEL, DUE + M)
    assert verdict.breached and levels(verdict) == [1]
    assert verdict.next_at is None


def test_a_rule_without_levels_still_reports_the_breach():
    rule = Rule(name="quiet", source="t", match=Match(), first_response=4 * H, escalate=())
    [before], [after] = evaluate(thread(), rule, DUE - M), evaluate(thread(), rule, DUE + M)
    assert (before.breached, before.next_at) == (False, DUE)
    assert (after.breached, after.due_steps, after.next_at) == (True, (), None)


def test_the_first_customer_message_starts_the_clock_even_if_stored_out_of_order():
    late_first = thread(tm(Kind.CUSTOMER, T0 - H), due_at=T0 + 3 * H)  # appended later, written earlier
    [verdict] = evaluate(late_first, RULE, T0 + 2 * H)
    assert verdict.received_at == T0 - H
    assert not verdict.breached and verdict.next_at == T0 + 3 * H


def test_a_team_reply_between_two_customer_messages_answers_the_first():
    answered = thread(tm(Kind.TEAM, T0 + H), tm(Kind.CUSTOMER, T0 + 2 * H))
    [verdict] = evaluate(answered, RULE, DUE + 3 * H)
    assert verdict.responded_at == T0 + H and not verdict.breached


@pytest.mark.parametrize("make", [
    lambda: Thread(id="<t@x>", subject="x", messages=[tm(Kind.TEAM, T0)], due_at=DUE),
    lambda: Thread(id="<t@x>", subject="x", messages=[tm(Kind.AUTO, T0)], due_at=DUE),
    lambda: Thread(id="<t@x>", subject="x", messages=[], due_at=DUE),
    lambda: thread(due_at=None),
], ids=["only-team-mail", "only-auto-mail", "no-messages", "no-deadline-set"])
def test_no_clock_runs_without_a_customer_message_or_deadline(make):
    assert evaluate(make(), RULE, DUE + 3 * H) == []
