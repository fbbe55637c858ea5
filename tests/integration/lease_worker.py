"""A stand-in for a `mailesc run` worker, as a process that tests can SIGKILL, SIGSTOP and SIGTERM: it joins the
installation (Membership), balances every BALANCE seconds, writes a heartbeat into each mailbox it holds (a
fenced flush) and prints what it holds as JSON lines; on SIGTERM it gives everything back and exits 0.

    MAILESC_TEST_PASSWORD=... python3 -m tests.integration.lease_worker URL LEASE_SECONDS BALANCE_SECONDS BOX...
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from mailesc.errors import LeaseLost, StoreError
from mailesc.stores.leases import Membership
from mailesc.stores.postgres import PostgresStore


def say(**values) -> None:
    print(json.dumps(values), flush=True)


def main() -> int:
    url, lease_seconds, balance_seconds, *mailboxes = sys.argv[1:]
    store = PostgresStore(url, os.environ["MAILESC_TEST_PASSWORD"], security="plain", connect_timeout=2)
    member = Membership(store, float(lease_seconds))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    member.start()
    say(worker=member.worker_id)
    last = None
    beats = 0
    while not stopping.is_set():
        try:
            member.balance(mailboxes)
            for mailbox in sorted(member.held()):
                beats += 1
                store.box(mailbox).meta["beat"] = {"by": member.worker_id, "n": beats}
                store.box(mailbox).flush()
        except LeaseLost:
            say(lost=True)
        except StoreError as error:
            say(error=str(error))
        held = sorted(member.held())
        if held != last:
            say(held=held)
            last = held
        stopping.wait(float(balance_seconds))
    member.release_all()
    say(released=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
