"""Where log lines go and which ones show: an operator reads the daemon's decisions, not a protocol dump.

    (no flag)   warnings and errors; `run` also its life (started, stopped, signals, reloads) and the lines that
                matter most (breach recorded, escalation sent, acknowledged)
    -v          + a summary of every cycle and every decision (thread opened, clock started with its deadline,
                response seen, warning / acknowledgement / escalation recorded)
    -vv         + mailesc's own debug lines
    --trace     + the IMAP and SMTP protocol (independent of -v: it is the only way to get it)

Decision lines carry structured fields (thread, breach, escalation_level, deadline, ...) in `extra`, given with
fields() or detail(); the JSON format writes them as keys beside time, level, logger and message. They name
threads and breaches by id: never a subject, a customer's name or address.

A traceback is shown from -vv on only, whichever library logged it: below that a line with an exception says
its type and message (no traceback reaches an operator who did not ask for one).

Everything is set up by configure(), once per command, on the root logger with one handler of ours."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
TRACE_LOGGERS = ("imapclient", "mailesc.trace")  # IMAP (imapclient and the imaplib under it) and SMTP (smtp.py)
BASE_KEYS = ("time", "level", "logger", "message")


def fields(**values) -> dict:
    """`extra` for a log call whose line has structured fields (shown at the default level of `run`)."""
    return {"fields": values}


def detail(**values) -> dict:
    """`extra` for a decision line shown from -v on (with its structured fields)."""
    return {"fields": values, "detail": True}


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT; a logged exception as a traceback only when `tracebacks`, else as "(Type: message)"."""

    def __init__(self, tracebacks: bool = False):
        super().__init__(TEXT_FORMAT)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info or record.exc_info[0] is None:
            return super().format(record)
        saved = record.exc_info, record.exc_text  # other handlers (and their caches) see the record unchanged
        record.exc_info, record.exc_text = None, None
        try:
            return f"{super().format(record)} ({_exception(saved[0])})"
        finally:
            record.exc_info, record.exc_text = saved


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the line's fields; a logged
    exception as "error" (type and message), with "traceback" only when `tracebacks`."""

    def __init__(self, tracebacks: bool = False):
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in (getattr(record, "fields", None) or {}).items():
            doc["field_" + key if key in BASE_KEYS else key] = value
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = _exception(record.exc_info)
            if self.tracebacks:
                doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=_plain, ensure_ascii=False)


def _exception(exc_info) -> str:
    return f"{exc_info[0].__name__}: {exc_info[1]}"


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each line (never to a stream replaced since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _plain(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _no_details(record: logging.LogRecord) -> bool:
    return not getattr(record, "detail", False)


def configure(verbosity: int = 0, *, trace: bool = False, log_format: str = "text", daemon: bool = False,
              stream=None) -> logging.Handler:
    """Send log lines to `stream` (stderr) in `log_format`, showing what `verbosity` and `trace` ask for.
    Calling it again replaces what an earlier call set up (tests run several commands in one process)."""
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    tracebacks = verbosity > 1
    handler.setFormatter(JsonFormatter(tracebacks) if log_format == "json" else TextFormatter(tracebacks))
    if verbosity < 1:
        handler.addFilter(_no_details)
    handler.mailesc = True  # type: ignore[attr-defined]  # ours: the next configure() replaces it
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "mailesc", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries: their warnings only
    own = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity or daemon else logging.WARNING
    logging.getLogger("mailesc").setLevel(own)
    for name in TRACE_LOGGERS:  # explicit levels: -vv on "mailesc" never turns the SMTP trace on
        logging.getLogger(name).setLevel(logging.DEBUG if trace else logging.WARNING)
    return handler
