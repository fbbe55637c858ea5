"""Thread.first_customer_message_after / first_response_after pick with min() instead of sorting the thread:
the same message as the first qualifying one of sorted_messages(), also among equal arrival times (the one
added first) and whatever order the messages were added in."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

from mailesc.model import Kind, Thread, ThreadMessage

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def sorted_first(thread: Thread, kind: Kind, start: datetime | None) -> ThreadMessage | None:
    """What the methods gave before: the first qualifying message of the sorted thread."""
    return next((m for m in thread.sorted_messages() if m.kind is kind and (start is None or m.arrived > start)),
                None)


def test_the_first_qualifying_message_is_the_one_sorting_gives():
    rng = random.Random(5)
    kinds = [Kind.CUSTOMER, Kind.TEAM, Kind.INTERNAL, Kind.AUTO]
    compared = 0
    for size in range(0, 9):
        for _ in range(60):
            # few distinct times, so that many messages arrive at the same moment
            messages = [ThreadMessage(key=str(n), folder="INBOX", message_id=f"<{n}@x>", kind=rng.choice(kinds),
                                      sender="a@x", arrived=T0 + timedelta(minutes=rng.randrange(4)))
                        for n in range(size)]
            thread = Thread(id="<0@x>", subject="s", messages=messages)
            for start in (None, *(T0 + timedelta(minutes=m) for m in (-1, 0, 1, 2, 3))):
                found = thread.first_customer_message_after(start)
                assert found is sorted_first(thread, Kind.CUSTOMER, start)
                if start is not None:
                    assert thread.first_response_after(start) is sorted_first(thread, Kind.TEAM, start)
                compared += found is not None
            assert thread.first_customer_message() is sorted_first(thread, Kind.CUSTOMER, None)
    assert compared > 500


def test_equal_arrivals_give_the_message_added_first_in_every_order():
    messages = [ThreadMessage(key=str(n), folder="INBOX", message_id=f"<{n}@x>", kind=Kind.CUSTOMER, sender="a@x",
                              arrived=T0) for n in range(4)]
    for order in itertools.permutations(messages):
        thread = Thread(id="<0@x>", subject="s", messages=list(order))
        assert thread.first_customer_message() is order[0]
