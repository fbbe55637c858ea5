"""An IMAP mailbox, read-only: SELECT ... READ-ONLY, UID SEARCH, BODY.PEEK. Never marks, moves or deletes.

This module holds the connection (login by password or XOAUTH2), the folders and poll()/fetch(). Reading the
answer to the header FETCH is imap_fetch.py (pure); waiting for new mail between polls with IMAP IDLE on the
first watched folder (RFC 2177) is imap_idle.py."""

from __future__ import annotations

import imaplib
import logging
import threading
from typing import Generator, Iterable, Mapping

import imapclient
from imapclient.imapclient import SENT
from imapclient.exceptions import IMAPClientError, LoginError

from mailesc.config import MailboxConfig, ServerConfig
from mailesc.errors import ConfigError, SourceError, connection_problem
from mailesc.model import RawMessage
from mailesc.sources import own_keys
from mailesc.sources.imap_errors import NETWORK_ERRORS, reason
from mailesc.sources.imap_fetch import HEADER_ITEMS, FetchedHeader, from_imapclient, parse_header_fetch
from mailesc.sources.imap_idle import wait_idling

BATCH = 500  # UIDs per FETCH command
log = logging.getLogger("mailesc.imap")


class ImapSource:
    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.server: ServerConfig = config.settings  # the imap kind's settings
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
            connection = imaplib_connection(client)
            if connection is not None:
                connection.debug = 4  # --trace shows commands and replies, not imaplib's parsing of each line
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
            raise SourceError(connection_problem("IMAP", server.where, error, reason(error))) from None
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
            raise SourceError(f"cannot open folder {folder!r} of {self.where}: {reason(error)}") from None

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
            raise SourceError(f"cannot open folder {folder!r} of {self.where}: {reason(error)}") from None

    # -- reading ------------------------------------------------------------------------------------------------

    def poll(self, sync: Mapping[str, dict]) -> Generator[RawMessage, None, dict[str, dict]]:
        """New messages of every watched folder, one FETCH batch at a time (a first sync of a big mailbox
        never holds all its headers at once); returns the bookmarks that moved. They are returned only when all
        folders were read, so a connection lost halfway loses nothing."""
        self._drop_if_stale()
        bookmarks = {}
        try:
            for folder in self.folders():
                bookmark = sync.get(f"imap:{folder}", {})
                bookmarks[f"imap:{folder}"] = yield from self._poll_folder(folder, bookmark)
            self._keep_selected(self.folders()[0])
        except NETWORK_ERRORS as error:
            self._reset()
            raise SourceError(f"lost the IMAP connection to {self.server.where}: {reason(error)}") from None
        return {name: state for name, state in bookmarks.items() if sync.get(name) != state}

    def _drop_if_stale(self) -> None:
        """A connection kept between polls may have been closed by the server or a firewall meanwhile."""
        if self._client is None:
            return
        try:
            self._client.noop()
        except NETWORK_ERRORS as error:
            log.info("the IMAP connection to %s went stale (%s); reconnecting", self.server.where, reason(error))
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
            for uid, message in sorted(self._fetch_headers(batch).items()):
                yield RawMessage(key=f"imap:{validity}:{uid}:{folder}", folder=folder, data=message.header,
                                 arrived=message.internaldate, size=message.size)
        return {"uidvalidity": validity, "last_uid": max(uids, default=last_uid)}

    def _fetch_headers(self, uids: list[int]) -> dict[int, FetchedHeader]:
        """UID -> header, INTERNALDATE and size of a batch: the hot command of a first sync, so its answer is
        read from imaplib directly (imap_fetch.parse_header_fetch); an answer of another shape, or one that
        lacks a UID asked for, is asked again through imapclient, which parses everything."""
        client = self.client()
        imap = imaplib_connection(client)
        found = None
        if imap is not None:
            typ, data = imap.uid("FETCH", ",".join(map(str, uids)), f"({' '.join(HEADER_ITEMS)})")
            found = parse_header_fetch(data) if typ == "OK" else None
        if found is None or not set(uids) <= found.keys():
            log.debug("unexpected FETCH response shape; parsing it with imapclient")
            return from_imapclient(client.fetch(uids, HEADER_ITEMS))
        return found

    # -- waiting for new mail -----------------------------------------------------------------------------------

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block up to `timeout` seconds until the server reports new mail in the first watched folder, or
        `stop` is set; True when there may be new mail (imap_idle.wait_idling says how)."""
        return wait_idling(self._client, timeout, stop, watch=self._watch, status=self._status,
                             uidnext_seen=self._uidnext, drop=self._reset, where=self.server.where)

    def _watch(self) -> str:
        """Select the folder IDLE watches (the first watched) and name it."""
        folder = (self.folders() or ["INBOX"])[0]
        self._keep_selected(folder)
        return folder

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted: dict[tuple[str, int], list[int]] = {}
        for key in own_keys("imap", keys):
            _, validity_text, uid, folder = key.split(":", 3)
            wanted.setdefault((folder, int(validity_text)), []).append(int(uid))
        found = {}
        try:
            for (folder, validity), uids in wanted.items():
                if self._select(folder) != validity:
                    continue  # the folder was rebuilt: those UIDs name other messages now
                for uid, data in self.client().fetch(uids, ["BODY.PEEK[]"]).items():
                    found[f"imap:{validity}:{uid}:{folder}"] = data[b"BODY[]"]
        except NETWORK_ERRORS as error:
            self._reset()
            raise SourceError(f"lost the IMAP connection to {self.server.where}: {reason(error)}") from None
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


def imaplib_connection(client: imapclient.IMAPClient) -> imaplib.IMAP4 | None:
    """The imaplib connection inside an IMAPClient, or None if this imapclient has none where 4.x keeps it.

    Why: the header FETCH of a sync is read from imaplib's raw answer (imapclient's parser took most of a
    first sync's time), and --trace sets imaplib's debug level. `_imap` is not imapclient's public API, so this
    is the only place that touches it, and it is checked: at run time (not an imaplib.IMAP4: None, and the
    sync asks through imapclient's public fetch instead, slower but right), and by the integration test
    test_the_imaplib_connection_is_reachable (tests/integration/test_servers.py), which fails when an
    imapclient upgrade moves it (syncs would otherwise silently fall back to the slow parser)."""
    imap = getattr(client, "_imap", None)
    return imap if isinstance(imap, imaplib.IMAP4) else None
