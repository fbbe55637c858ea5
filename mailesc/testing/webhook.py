"""A local chat webhook receiver (Slack/Mattermost/Teams incoming-webhook stand-in) for tests and checks.

``WebhookServer().start()`` serves on a free port of 127.0.0.1 (http.server in a daemon thread) and records every
POST it gets (path, headers, body as JSON when it is JSON). ``fail_next(count, status, retry_after=None)``
makes it answer the next ``count`` posts with ``status`` (500, 429, 400...) instead of 200, as a chat service
having a bad minute (or refusing a revoked webhook) would; ``.url`` is the URL to give mailesc (through
``url_env`` or ``url_file``, as in production). Standard library only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailesc.testing.wait import LOCALHOST

if TYPE_CHECKING:
    import http.server

__all__ = ["WebhookRequest", "WebhookServer"]


@dataclass(frozen=True)
class WebhookRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the server answered
    json: Any = field(default=None, compare=False)  # the body parsed, when it is JSON


class WebhookServer:
    """Records POSTs; answers 200 "ok" unless told to fail the next ones."""

    def __init__(self, host: str = LOCALHOST, path: str = "/hooks/T000/B000/secret-token"):
        self.host, self.path = host, path
        self.port: int | None = None
        self._requests: list[WebhookRequest] = []
        self._failures: list[tuple[int, str | None]] = []  # answers for the next posts, in order
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The webhook URL (valid after ``start()``); its path plays the token a real one holds."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def requests(self) -> list[WebhookRequest]:
        """Every POST received, oldest first (those answered with an error too)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[WebhookRequest]:
        """The POSTs answered 2xx: what a channel would show."""
        return [request for request in self.requests if 200 <= request.status < 300]

    def fail_next(self, count: int, status: int, retry_after: str | None = None) -> None:
        """Answer the next `count` posts with HTTP `status` (and a Retry-After header when given)."""
        with self._lock:
            self._failures += [(status, retry_after)] * count

    def start(self) -> "WebhookServer":
        import http.server

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    status, retry_after = owner._failures.pop(0) if owner._failures else (200, None)
                    try:
                        parsed = json.loads(body)
                    except ValueError:
                        parsed = None
                    owner._requests.append(WebhookRequest(self.path, dict(self.headers.items()), body, status,
                                                          parsed))
                answer = b"ok" if status == 200 else f"error {status}".encode()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "WebhookServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
