"""A local OAuth 2 token introspection endpoint (RFC 7662), for XOAUTH2/OAUTHBEARER logins to a test Dovecot.

``DovecotServer(oauth2=IntrospectionServer().start())`` checks every bearer token with it, so a test decides which
tokens are valid (``issue``/``revoke``) without any identity provider. Standard library only (``http.server``).
"""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING

from mailesc.testing.wait import LOCALHOST

if TYPE_CHECKING:
    import http.server

__all__ = ["IntrospectionServer"]


class IntrospectionServer:
    """A tiny OAuth 2 token introspection endpoint (RFC 7662) on 127.0.0.1 (http.server in a thread).

    ``issue(username)`` makes a random access token for ``username``; POST (form ``token=...``)
    or GET (``?token=...``, or ``Authorization: Bearer ...``) to ``.url`` answers
    ``{"active": true, "username": USER}`` for an issued token and ``{"active": false}``
    otherwise. ``.requests`` lists every token it was asked about, oldest first.
    A ``DovecotServer(oauth2=...)`` uses it for its oauth2 passdb.
    """

    def __init__(self, host: str = LOCALHOST):
        self.host = host
        self.port: int | None = None
        self._tokens: dict[str, str] = {}
        self._requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The introspection endpoint (valid after ``start()``)."""
        return f"http://{self.host}:{self.port}/introspect"

    def start(self) -> "IntrospectionServer":
        """Serve on a free port in a daemon thread; returns self."""
        import http.server
        import json
        import urllib.parse

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, token: str | None) -> None:
                with owner._lock:
                    owner._requests.append(token or "")
                    user = owner._tokens.get(token or "")
                body = json.dumps({"active": True, "username": user} if user else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _bearer(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                return auth[7:].strip() if auth.lower().startswith("bearer ") else None

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                self._answer((form.get("token") or [None])[0] or self._bearer())

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                self._answer((query.get("token") or query.get("access_token") or [None])[0] or self._bearer())

            def log_message(self, *args):  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="introspection", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and close its socket (safe to call twice)."""
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            httpd.shutdown()
            httpd.server_close()

    def issue(self, username: str) -> str:
        """A new access token that introspects as active for ``username``."""
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        """From now on ``token`` introspects as inactive (a login with it is refused)."""
        with self._lock:
            self._tokens.pop(token, None)

    @property
    def requests(self) -> list[str]:
        """Every token the server was asked about, oldest first (empty string: a request without one)."""
        with self._lock:
            return list(self._requests)

    def __repr__(self) -> str:
        return f"<IntrospectionServer {self.url} tokens={len(self._tokens)}>"


