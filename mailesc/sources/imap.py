"""An IMAP mailbox, read-only: SELECT ... READ-ONLY, UID SEARCH, BODY.PEEK. Never marks, moves or deletes.

Between polls the daemon may call wait(): IMAP IDLE on the first watched folder (RFC 2177), so new mail is
noticed within about a second instead of at the next poll."""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Generator, Iterable, Iterator, MutableMapping

import imapclient
from imapclient.imapclient import SENT
from imapclient.exceptions import IMAPClientError, LoginError

from mailesc.errors import ConfigError, SourceError, connection_problem
from mailesc.model import RawMessage

BATCH = 500  # UIDs per FETCH command
HEADER_ITEMS = ["INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[HEADER]"]
NETWORK_ERRORS = (OSError, IMAPClientError, imaplib.IMAP4.error, ssl.SSLError)
IDLE_RENEW = 540.0  # seconds: end and restart IDLE before the 10 minutes after which NAT boxes and firewalls
                   # forget a quiet connection (RFC 2177 asks for at most 29 minutes; many middleboxes allow 10)
STOP_CHECK = 1.0  # seconds: how often a wait looks at its stop event
log = logging.getLogger("mailesc.imap")


class ImapSource:
    def __init__(self, config):
        self.config = config
        self.server = config.server
        self._client: imapclient.IMAPClient | None = None
        self._folders: list[str] | None = None
        self._uidnext: dict[str, int] = {}  # folder -> UIDNEXT when the last poll looked at it
        self._selected: str | None = None  # the folder the connection has selected

    # -- connection ---------------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.server.username} at {self.server.where}"

    def client(self) -> imapclient.IMAPClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> imapclient.IMAPClient:
        server = self.server
        try:
            password = server.password.read() if server.auth == "password" else None
            token = server.token.read() if server.auth == "xoauth2" else None
        except ConfigError as error:  # checked at start; gone since (a password file removed): the poll fails,
            raise SourceError(str(error)) from None  # is logged once, backs off and shows in `mailesc status`
        context = server.tls_context()
        try:
            client = imapclient.IMAPClient(
                server.host, port=server.port, ssl=server.security == "tls", ssl_context=context,
                timeout=imapclient.SocketTimeout(connect=server.timeout, read=server.timeout))
            client.normalise_times = False
            client._imap.debug = 4  # --trace shows commands and replies, not imaplib's parsing of each line
            if server.security == "starttls":
                client.starttls(context)
            if server.auth == "xoauth2":
                client.oauth2_login(server.username, token)
            else:
                client.login(server.username, password or "")
        except LoginError:
            what = "access token" if server.auth == "xoauth2" else "password"
            raise SourceError(f"IMAP login refused for {self.where}: check the user name and {what}") from None
        except NETWORK_ERRORS as error:
            raise SourceError(connection_problem("IMAP", server.where, error, _reason(error))) from None
        return client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.logout()
            except NETWORK_ERRORS:
                pass
            self._client, self._selected = None, None

    def _reset(self) -> None:
        """Forget a connection that failed, so the next call reconnects."""
        try:
            if self._client is not None:
                self._client.shutdown()
        except NETWORK_ERRORS:
            pass
        self._client, self._folders = None, None
        self._uidnext.clear()
        self._selected = None

    # -- folders ------------------------------------------------------------------------------------------------

    def folders(self) -> list[str]:
        if self._folders is None:
            names = list(dict.fromkeys(self.config.folders))
            sent = self.sent_folder()
            if sent and sent not in names:
                names.append(sent)
            self._folders = names
        return self._folders

    def sent_folder(self) -> str:
        wanted = self.config.sent_folder
        if wanted != "auto":
            return wanted
        return self.client().find_special_folder(SENT) or ""

    def _select(self, folder: str) -> int:
        return int(self._select_info(folder)[b"UIDVALIDITY"])

    def _status(self, folder: str) -> dict:
        try:
            return self.client().folder_status(folder, [b"UIDNEXT", b"UIDVALIDITY"])
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as error:
            raise SourceError(f"cannot open folder {folder!r} of {self.where}: {_reason(error)}") from None

    def _keep_selected(self, folder: str) -> None:
        """Leave `folder` (the first watched) selected between polls: IDLE watches it, and STATUS of any
        folder is cheap while one is selected (with none selected, Dovecot opens the folder for each)."""
        if self._selected != folder:
            self._select_info(folder)

    def _select_info(self, folder: str) -> dict:
        try:
            info = self.client().select_folder(folder, readonly=True)
            self._selected = folder
            return info
        except imaplib.IMAP4.abort:
            raise  # the connection, not the folder
        except IMAPClientError as error:
            raise SourceError(f"cannot open folder {folder!r} of {self.where}: {_reason(error)}") from None

    # -- reading ------------------------------------------------------------------------------------------------

    def poll(self, sync: MutableMapping[str, dict]) -> Iterator[RawMessage]:
        """New messages of every watched folder, one FETCH batch at a time (a first sync of a big mailbox
        never holds all its headers at once). Bookmarks move only when all folders were read, so a connection
        lost halfway loses nothing."""
        self._drop_if_stale()
        bookmarks = {}
        try:
            for folder in self.folders():
                bookmark = sync.get(f"imap:{folder}", {})
                bookmarks[f"imap:{folder}"] = yield from self._poll_folder(folder, bookmark)
            self._keep_selected(self.folders()[0])
        except NETWORK_ERRORS as error:
            self._reset()
            raise SourceError(f"lost the IMAP connection to {self.server.where}: {_reason(error)}") from None
        sync.update({name: state for name, state in bookmarks.items() if sync.get(name) != state})

    def _drop_if_stale(self) -> None:
        """A connection kept between polls may have been closed by the server or a firewall meanwhile."""
        if self._client is None:
            return
        try:
            self._client.noop()
        except NETWORK_ERRORS as error:
            log.info("the IMAP connection to %s went stale (%s); reconnecting", self.server.where, _reason(error))
            self._reset()

    def _poll_folder(self, folder: str, bookmark: dict) -> Generator[RawMessage, None, dict]:
        """Yield the folder's new messages; return its new bookmark.

        "Anything new?" is asked with STATUS (UIDNEXT UIDVALIDITY), which Dovecot answers in well under a
        millisecond while a folder is selected, whatever its size; SELECT, which costs tens of milliseconds on a
        big folder, only happens when there is something to fetch."""
        info = self._status(folder)
        validity = int(info[b"UIDVALIDITY"])
        last_uid = bookmark.get("last_uid", 0) if bookmark.get("uidvalidity") == validity else 0
        uidnext = int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None
        if uidnext is not None:
            self._uidnext[folder] = uidnext
        if uidnext is not None and uidnext <= last_uid + 1:
            return {"uidvalidity": validity, "last_uid": last_uid}  # nothing new: no SELECT, SEARCH or FETCH
        if self._select(folder) != validity:
            return bookmark  # UIDVALIDITY changed between STATUS and SELECT: read it all at the next poll
        uids = [uid for uid in self.client().search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid]
        for start in range(0, len(uids), BATCH):
            batch = uids[start:start + BATCH]
            for uid, (header, arrived, size) in sorted(self._fetch_headers(batch).items()):
                yield RawMessage(key=f"imap:{validity}:{uid}:{folder}", folder=folder, data=header,
                                 arrived=arrived, size=size)
        return {"uidvalidity": validity, "last_uid": max(uids, default=last_uid)}

    def _fetch_headers(self, uids: list[int]) -> dict[int, tuple[bytes, datetime | None, int | None]]:
        """UID -> (header, INTERNALDATE, size) of a batch.

        The hot command of a first sync: imapclient's pure-Python response parser took most of its time
        (17 of 24 s for 100k messages), so its response is read from imaplib directly, and any answer that
        does not have the expected shape is asked again through imapclient, which parses everything."""
        client = self.client()
        imap = getattr(client, "_imap", None)  # imapclient's imaplib connection (not public API: checked)
        found = None
        if isinstance(imap, imaplib.IMAP4):
            typ, data = imap.uid("FETCH", ",".join(map(str, uids)), f"({' '.join(HEADER_ITEMS)})")
            found = _header_fetch_response(data) if typ == "OK" else None
        if found is None or not set(uids) <= found.keys():
            log.debug("unexpected FETCH response shape; parsing it with imapclient")
            return {uid: (data.get(b"BODY[HEADER]", b""), _aware(data.get(b"INTERNALDATE")),
                          data.get(b"RFC822.SIZE")) for uid, data in client.fetch(uids, HEADER_ITEMS).items()}
        return found

    # -- waiting for new mail -----------------------------------------------------------------------------------

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block up to `timeout` seconds until the server reports new mail in the first watched folder
        (IMAP IDLE), or `stop` is set (looked at every second). True when there may be new mail: the caller
        polls at once. Without IDLE, or without a connection (the next poll makes one), it just waits on `stop`.

        IDLE is always ended before returning, so the connection is free for poll() and fetch(). A connection
        that dies meanwhile is dropped (the next poll reconnects) and True is returned, so that happens now."""
        deadline = time.monotonic() + max(timeout, 0.0)
        client = self._client
        if client is None or stop.is_set() or not self._can_idle(client):
            stop.wait(max(timeout, 0.0))
            return False
        try:
            folder = (self.folders() or ["INBOX"])[0]
            self._keep_selected(folder)
            client.noop()  # brings the selected folder's view up to date: STATUS of it answers from that view
            if int(self._status(folder).get(b"UIDNEXT", 0)) > self._uidnext.get(folder, 1 << 62):
                return True  # arrived between the last poll and now: no notification will come for it
            while time.monotonic() < deadline and not stop.is_set():
                if self._idle_once(client, folder, min(deadline, time.monotonic() + IDLE_RENEW), stop):
                    return True
        except SourceError as error:  # the folder cannot be opened: poll() will say so
            log.debug("no IDLE: %s", error)
            stop.wait(max(deadline - time.monotonic(), 0.0))
        except NETWORK_ERRORS as error:
            log.info("the IMAP connection to %s broke while idle (%s); reconnecting", self.server.where,
                     _reason(error))
            self._reset()
            return not stop.is_set()
        return False

    def _can_idle(self, client: imapclient.IMAPClient) -> bool:
        try:
            return client.has_capability("IDLE")
        except NETWORK_ERRORS:
            return False

    def _idle_once(self, client: imapclient.IMAPClient, folder: str, until: float, stop: threading.Event) -> bool:
        """One IDLE command, ended by DONE at `until`, at `stop` or at the first new message. True on new mail."""
        client.idle()
        news = False
        try:
            while not news and not stop.is_set() and (left := until - time.monotonic()) > 0:
                started = time.monotonic()
                responses = client.idle_check(timeout=min(STOP_CHECK, left))
                news = any(_is_new_mail(response) for response in responses)
                if not responses and time.monotonic() - started < min(STOP_CHECK, left) / 2:
                    break  # readable but no line: the server closed the connection; DONE below tells
        finally:
            _, responses = client.idle_done()  # raises on a dead connection
        return news or any(_is_new_mail(response) for response in responses)

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted: dict[tuple[str, int], list[int]] = {}
        for key in keys:
            _, validity, uid, folder = key.split(":", 3)
            wanted.setdefault((folder, int(validity)), []).append(int(uid))
        found = {}
        try:
            for (folder, validity), uids in wanted.items():
                if self._select(folder) != validity:
                    continue  # the folder was rebuilt: those UIDs name other messages now
                for uid, data in self.client().fetch(uids, ["BODY.PEEK[]"]).items():
                    found[f"imap:{validity}:{uid}:{folder}"] = data[b"BODY[]"]
        except NETWORK_ERRORS as error:
            self._reset()
            raise SourceError(f"lost the IMAP connection to {self.server.where}: {_reason(error)}") from None
        return found

    def describe(self) -> dict:
        client = self.client()
        return {
            "kind": "imap",
            "server": f"{self.server.where} ({self.server.security})",
            "user": self.server.username,
            "capabilities": sorted(c.decode() for c in client.capabilities()),
            "sent_folder": self.sent_folder() or None,
            "folders": {folder: client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"] for folder in self.folders()},
        }


def _is_new_mail(response) -> bool:
    """An untagged `* n EXISTS` (the folder grew); EXPUNGE, FETCH flag changes and keep-alives are not."""
    return isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_HEADER_LITERAL = re.compile(rb"\bBODY\[HEADER\] \{\d+\}$")
_MONTHS = {m.encode(): n for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                                   "Oct", "Nov", "Dec"), start=1)}


def _header_fetch_response(data: list) -> dict[int, tuple[bytes, datetime | None, int | None]] | None:
    """imaplib's answer to UID FETCH (UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER]): a (prefix, literal)
    pair per message, then the rest of its line. None when anything looks different (the caller then lets
    imapclient parse it); answers without a header literal (unsolicited FLAGS updates) are skipped."""
    found = {}
    for number, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        prefix, header = item
        rest = data[number + 1] if number + 1 < len(data) and isinstance(data[number + 1], bytes) else b""
        if not _HEADER_LITERAL.search(prefix):
            return None
        line = prefix + b" " + rest
        uid, size, date = _UID.search(line), _SIZE.search(line), _INTERNALDATE.search(line)
        if uid is None:
            return None
        found[int(uid.group(1))] = (header, _internaldate(date), int(size.group(1)) if size else None)
    return found


def _internaldate(match: re.Match | None) -> datetime | None:
    if match is None or match.group(2) not in _MONTHS:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == b"-" else 1)
    return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second),
                    tzinfo=timezone(offset))


def _aware(when: datetime | None) -> datetime | None:
    """INTERNALDATE with a stdlib timezone (imapclient's FixedOffset cannot be copied)."""
    if when is None:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.replace(tzinfo=timezone(when.utcoffset()))


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text or type(error).__name__
