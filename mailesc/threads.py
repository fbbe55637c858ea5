"""Group messages into threads: Message-ID / In-Reply-To / References first, subject only as a fallback."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from sys import intern
from typing import Callable, Iterable

from mailesc.model import Message, Thread

# Reply and forward prefixes in many languages, optionally numbered (Re[2]:, Re^2:, Re(2):).
_PREFIX = re.compile(
    r"^\s*(?:re|aw|wg|sv|vs|svar|antw|antwort|doorst|tr|rif|r|odp|fw|fwd|enc|rv|res|vb|vl|ynt|atb|přep"
    r"|回复|回覆|答复|转发|轉寄|返信|転送)"
    r"\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")  # list or ticket tags: [Support], [Ticket#123]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SUBJECT_WINDOW = timedelta(days=30)


def normalize_subject(subject: str) -> tuple[str, bool]:
    """The subject without reply/forward prefixes and tags, lower case; and whether a reply prefix was there."""
    text, had_prefix = subject, False
    while True:
        without_prefix = _PREFIX.sub("", text, count=1)
        had_prefix |= without_prefix != text
        stripped = _TAG.sub("", without_prefix, count=1)
        if stripped == text:
            break
        text = stripped
    return " ".join(text.lower().split()), had_prefix


class ThreadIndex:
    """Finds the thread a new message belongs to. JWZ-style: unknown parents still join their children.

    An orphan reply (its References/In-Reply-To name only messages never seen here: a list or gateway
    rewrote the parent's Message-ID, or the parent was deleted) joins by subject like JWZ's subject
    gathering, but only a thread with a participant in common (outside the team: everybody writes to the
    support address) that was active within `subject_window`.

    `threads` may be a function that gives them: it is called when a message is first looked up, so that a
    cycle with no new mail reads no thread (the store makes each from its record only when asked for)."""

    def __init__(self, threads: Iterable[Thread] | Callable[[], Iterable[Thread]] = (), *,
                 subject_window: timedelta = SUBJECT_WINDOW,
                 is_internal: Callable[[str], bool] = lambda address: False):
        self._by_id: dict[str, Thread] = {}
        self._by_subject: dict[str, Thread] = {}
        # For orphans, every live thread per subject: the thread itself while it is the only one (most
        # subjects; a dict each would cost megabytes in a big mailbox), a dict by thread id after that.
        self._all_by_subject: dict[str, Thread | dict[str, Thread]] = {}
        self.subject_window, self.is_internal = subject_window, is_internal
        self._unread: Callable[[], Iterable[Thread]] | None = threads if callable(threads) else None
        if not callable(threads):
            for thread in threads:
                self.add(thread)

    def _read(self) -> None:
        """Index the threads given as a function, once, before the first lookup or addition."""
        if self._unread is not None:
            unread, self._unread = self._unread, None
            for thread in unread():
                self.add(thread)

    def add(self, thread: Thread) -> None:
        self._read()
        for message_id in thread.ids:
            self._by_id.setdefault(message_id, thread)
        if thread.subject:
            latest = self._by_subject.get(thread.subject)
            if latest is None or _last_activity(thread) >= _last_activity(latest):
                self._by_subject[thread.subject] = thread
            same = self._all_by_subject.setdefault(thread.subject, thread)
            if isinstance(same, Thread) and same is not thread:
                self._all_by_subject[thread.subject] = same = {same.id: same}
            if isinstance(same, dict):
                same[thread.id] = thread

    def remove(self, thread: Thread) -> None:
        """Forget an archived thread: a later message about it opens a new one. (Before the threads given as a
        function are read, nothing: they are read from the store, which no longer holds it.)"""
        if self._unread is not None:
            return
        for message_id in thread.ids:
            if self._by_id.get(message_id) is thread:
                del self._by_id[message_id]
        if self._by_subject.get(thread.subject) is thread:
            del self._by_subject[thread.subject]
        same = self._all_by_subject.get(thread.subject)
        if same is thread:
            del self._all_by_subject[thread.subject]
        elif isinstance(same, dict) and same.get(thread.id) is thread:
            del same[thread.id]

    def find(self, message: Message) -> Thread | None:
        self._read()
        for message_id in (*message.parents, message.message_id):
            if message_id in self._by_id:
                return self._by_id[message_id]
        subject, had_prefix = normalize_subject(message.subject)
        if not had_prefix or not subject:
            return None
        if not message.parents:
            return self._by_subject.get(subject)
        return self._orphan_home(message, subject)

    def _orphan_home(self, message: Message, subject: str) -> Thread | None:
        """The thread an orphan reply joins: same subject, someone outside the team in common, active within
        the window (the latest such thread); None if there is none."""
        people = {address for address in (message.sender, *message.recipients) if not self.is_internal(address)}
        same = self._all_by_subject.get(subject)
        candidates = same.values() if isinstance(same, dict) else [same] if same else []
        fitting = [thread for thread in candidates
                   if abs(message.arrived - _last_activity(thread)) <= self.subject_window
                   and people & {m.sender for m in thread.messages}]
        return max(fitting, key=_last_activity, default=None)

    def place(self, message: Message, may_open: bool = True) -> Thread | None:
        """The thread for `message` (a new one if none fits and `may_open`), now knowing the message's ids.

        The caller appends the message to the thread and then calls add() again, so that the
        subject fallback points at the thread with the latest activity."""
        thread = self.find(message)
        if thread is None:
            if not may_open:
                return None
            root = message.parents[0] if message.parents else message.message_id
            thread = Thread(id=intern(root), subject=normalize_subject(message.subject)[0])
        # interned, as the store does when it reads threads back: a parent named by many replies, and each id
        # in the index and in its message, is one string
        thread.ids.update(intern(message_id) for message_id in (*message.parents, message.message_id))
        return thread


def _last_activity(thread: Thread):
    return max((m.arrived for m in thread.messages), default=None) or _EPOCH
