"""The `webhook` notifier: a ladder level's JSON post to a chat's incoming webhook (Slack, Mattermost, Teams).

```toml
[webhook.ops]
url_env = "MAILESC_OPS_WEBHOOK"   # or url_file = "/etc/mailesc/ops-webhook" (one of them)
format = "slack"                  # "slack" (also Mattermost and Teams' old connectors) or "teams" (Workflows)
timeout_seconds = 10
```

A level names it with `notify = ["webhook:ops"]`. The URL holds the channel's token: it is read from the
environment or a private file only when a post is made (and once at start, to check it), and it never appears
in a log line, an error, `status`, `check` or the store: they all name the webhook (`ops`) only.

What a post's answer means, like an SMTP reply: 2xx is delivered; a connection that fails, a timeout, HTTP 429
and 5xx are temporary (retried with the outbox's backoff, or after the receiver's Retry-After if it is later);
any other status (a 4xx: a revoked or mistyped webhook, a body it refuses; a 3xx: redirects are not followed)
fails the post for good with the status as its error. Posting is a blocking call bounded by timeout_seconds, as
the command transport's program is."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mailesc.errors import ConfigError, PermanentTransportError, TemporaryTransportError

if TYPE_CHECKING:
    from mailesc.config import _Reader
    from mailesc.model import WebhookPost

KEYS = ("url_env", "url_file", "format", "timeout_seconds")
FORMATS = ("slack", "teams")
RETRY_AFTER_MOST = timedelta(hours=1)  # a Retry-After longer than this is taken as this


@dataclass(frozen=True)
class WebhookConfig:
    """One `[webhook.NAME]` table: where its URL is (never the URL itself), its payload format, its timeout."""

    name: str
    url_env: str | None = None
    url_file: Path | None = None
    format: str = "slack"
    timeout: float = 10.0
    config_file: Path = Path("mailesc.toml")

    @property
    def section(self) -> str:
        return f"webhook.{self.name}"

    def url(self) -> str:
        """The URL, read now; ConfigError (naming the file and key, never the URL) when it cannot be had."""
        from mailesc.config import Secret

        assert self.url_env or self.url_file, "a webhook has url_env or url_file (checked when read)"
        secret = Secret(env=self.url_env, file=self.url_file, config_file=self.config_file, section=self.section,
                        keys=("url_env", "url_file"))
        value = (secret.read() or "").strip()
        problem = url_problem(value)
        if problem:
            raise ConfigError(self.config_file, secret.key, f"the URL in {secret.where} {problem}")
        return value


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL, said without quoting it (it holds a token), or None."""
    if not url:
        return "is empty"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "is not an https:// URL"
    if parts.scheme == "http":
        from mailesc.config import is_loopback

        if not is_loopback(host):
            return "must start with https:// (plain http:// would send its token in clear text; it is only " \
                   "allowed to a loopback host)"
    return None


def read_webhooks(reader: _Reader) -> tuple[WebhookConfig, ...]:
    """Every `[webhook.NAME]` table, each problem (naming file and key) added to the reader's."""
    from mailesc.config import _Section

    tables = reader.data.get("webhook", {})
    if not isinstance(tables, dict):
        reader.problem("webhook", "write webhooks as [webhook.NAME] tables, like [webhook.ops]")
        return ()
    found = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            reader.problem(f"webhook.{name}", "must be a table with url_env or url_file, like [webhook.ops]")
            continue
        section = _Section(reader, f"webhook.{name}", table, KEYS)
        if not name.replace("-", "").replace("_", "").isalnum() or not name.isascii():
            reader.problem(f"webhook.{name}", "a webhook's name has letters, digits, '-' and '_' only "
                                              '(levels name it as "webhook:NAME")')
        env, file = table.get("url_env"), table.get("url_file")
        if env is None and file is None:
            section.problem("url_env", "a webhook needs url_env (an environment variable holding its URL) or "
                                       "url_file (a file holding it): the URL holds a token, so it is never "
                                       "written in the config")
        elif env is not None and file is not None:
            section.problem("url_env", "give either url_env or url_file, not both")
        if "url" in table:
            section.problem("url", "the URL holds a token and is not written in the config: use url_env or "
                                   "url_file")
        found.append(WebhookConfig(
            name=name, url_env=section.text("url_env", "") or None,
            url_file=section.path("url_file", "") if file is not None else None,
            format=section.text("format", "slack", FORMATS),
            timeout=float(section.number("timeout_seconds", 10, minimum=1)), config_file=reader.file))
    return tuple(found)


def url_problems(webhooks: tuple[WebhookConfig, ...]) -> list[tuple[str, str, str]]:
    """Webhooks whose URL cannot be had now (a variable not set, a file missing or readable by others, not an
    https URL): found at `check` and at start, so that a post does not fail at every breach."""
    problems = []
    for webhook in webhooks:
        try:
            webhook.url()
        except ConfigError as error:
            problems += error.problems
    return problems


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is answered as a refusal (urllib would resend a POST as a GET, without body)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookNotifier:
    """Posts to the configured webhooks by name (HTTPS verified with the system's CAs)."""

    def __init__(self, webhooks: tuple[WebhookConfig, ...], context: ssl.SSLContext | None = None):
        self.webhooks = {webhook.name: webhook for webhook in webhooks}
        self._opener = urllib.request.build_opener(
            _NoRedirects(), urllib.request.HTTPSHandler(context=context or ssl.create_default_context()))

    def post(self, post: WebhookPost) -> Exception | None:
        webhook = self.webhooks.get(post.name)
        if webhook is None:
            return PermanentTransportError(f"no webhook named {post.name!r} is configured any more")
        try:
            url = webhook.url()
        except ConfigError as error:  # found at start; gone since (a variable unset by a reload, a file removed)
            return TemporaryTransportError(f"the URL of webhook {post.name} cannot be read: {error.problems[0][2]}")
        from mailesc.compose import webhook_payload  # not at the top: reading the config must not load render

        body = json.dumps(webhook_payload(post.text, webhook.format)).encode("utf-8")
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "mailesc"})
        try:
            with self._opener.open(request, timeout=webhook.timeout) as answer:
                answer.read()
                return None
        except urllib.error.HTTPError as error:
            with error:
                return status_error(post.name, error.code, error.headers.get("Retry-After") if error.headers
                                    else None)
        except (urllib.error.URLError, OSError, ValueError) as error:
            return connection_error(post.name, error, webhook.timeout)

    def check(self) -> dict:
        """What `mailesc check` reports: each webhook's name, format and where its URL is; never the URL."""
        return {webhook.name: f"{webhook.format}, URL from "
                              + (f"${webhook.url_env}" if webhook.url_env else str(webhook.url_file))
                for webhook in self.webhooks.values()}


def status_error(name: str, status: int, retry_after: str | None = None) -> Exception | None:
    """What a webhook's answer with HTTP `status` means: None (taken), or the error that settles the post."""
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        error = TemporaryTransportError(f"the webhook {name} answered HTTP {status}")
        error.retry_after = _retry_after(retry_after)  # type: ignore[attr-defined]
        return error
    note = " (a webhook URL that redirects: give the URL it leads to)" if 300 <= status < 400 else ""
    return PermanentTransportError(f"the webhook {name} answered HTTP {status}{note}")


def connection_error(name: str, error: BaseException, timeout: float) -> TemporaryTransportError:
    """A post that got no answer: temporary. Said without the URL (urllib's texts may hold the host)."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return TemporaryTransportError(f"the webhook {name} did not answer within {timeout:g}s (timeout_seconds)")
    if isinstance(reason, ssl.SSLCertVerificationError):
        text = "its certificate could not be verified"
    elif isinstance(reason, socket.gaierror):
        text = "its host name could not be resolved"
    elif isinstance(reason, OSError) and reason.strerror:
        text = reason.strerror.lower()
    else:
        text = type(reason).__name__
    return TemporaryTransportError(f"the webhook {name} could not be reached: {text}")


def _retry_after(value: str | None) -> timedelta | None:
    """Retry-After in seconds (the form chat services use); an HTTP date or nonsense is ignored."""
    if not value or not value.strip().isdigit():
        return None
    return min(timedelta(seconds=int(value.strip())), RETRY_AFTER_MOST)
