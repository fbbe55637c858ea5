"""Which log lines show at which verbosity, and the JSON format: mailesc.logs, table-driven."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mailesc.logs import configure, detail, fields

# One line of each kind a command can log: (name, logger, level, extra)
LINES = [
    ("lifecycle", "mailesc.daemon", logging.INFO, None),
    ("breach", "mailesc.cycle", logging.INFO, fields(breach=7)),
    ("decision", "mailesc.cycle", logging.INFO, detail(thread="<t@x>")),
    ("debug", "mailesc.cycle", logging.DEBUG, None),
    ("warning", "mailesc.outbox", logging.WARNING, None),
    ("imap-trace", "imapclient.imaplib", logging.DEBUG, None),
    ("smtp-trace", "mailesc.trace.smtp", logging.DEBUG, None),
    ("library-info", "schedule", logging.INFO, None),
    ("library-warning", "aiosmtplib", logging.WARNING, None),
]

ALWAYS = {"warning", "library-warning"}
CASES = [  # verbosity, trace, daemon (mailesc run) -> the lines that show
    (0, False, False, ALWAYS),
    (0, False, True, ALWAYS | {"lifecycle", "breach"}),
    (1, False, False, ALWAYS | {"lifecycle", "breach", "decision"}),
    (1, False, True, ALWAYS | {"lifecycle", "breach", "decision"}),
    (2, False, True, ALWAYS | {"lifecycle", "breach", "decision", "debug"}),
    (0, True, False, ALWAYS | {"imap-trace", "smtp-trace"}),
    (0, True, True, ALWAYS | {"lifecycle", "breach", "imap-trace", "smtp-trace"}),
    (2, True, False, ALWAYS | {"lifecycle", "breach", "decision", "debug", "imap-trace", "smtp-trace"}),
]


def emit_all(**options) -> str:
    stream = io.StringIO()
    configure(stream=stream, **options)
    for name, logger, level, extra in LINES:
        logging.getLogger(logger).log(level, "line %s", name, extra=extra)
    return stream.getvalue()


@pytest.fixture(autouse=True)
def restore_logging():
    """configure() sets levels on shared loggers: put them back so other tests see the defaults."""
    names = ["", "mailesc", "imapclient", "mailesc.trace", "mail.log"]
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.parametrize("verbosity, trace, daemon, expected", CASES)
def test_which_lines_show(verbosity, trace, daemon, expected):
    output = emit_all(verbosity=verbosity, trace=trace, daemon=daemon)
    shown = {name for name, *_ in LINES if f"line {name}\n" in output}
    assert shown == expected, output


@pytest.mark.parametrize("verbosity, trace, daemon, expected", CASES)
def test_json_format_gives_one_object_per_line_with_the_same_lines(verbosity, trace, daemon, expected):
    output = emit_all(verbosity=verbosity, trace=trace, daemon=daemon, log_format="json")
    docs = [json.loads(line) for line in output.splitlines()]
    assert {doc["message"].removeprefix("line ") for doc in docs} == expected
    for doc in docs:
        assert list(doc)[:4] == ["time", "level", "logger", "message"], doc
        assert doc["time"].endswith("+00:00") and doc["level"] in ("DEBUG", "INFO", "WARNING"), doc


def test_json_carries_a_decision_lines_fields_and_never_lets_them_hide_the_base_keys():
    stream = io.StringIO()
    configure(1, log_format="json", stream=stream)
    logging.getLogger("mailesc.cycle").info("breach %d: level %d escalation recorded", 3, 2,
                                            extra=detail(breach=3, thread="<a@b>", escalation_level=2,
                                                         deadline="2026-11-30T13:00:00+01:00", level="clash"))
    [doc] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert doc["message"] == "breach 3: level 2 escalation recorded"
    assert (doc["level"], doc["logger"]) == ("INFO", "mailesc.cycle")
    assert (doc["breach"], doc["thread"], doc["escalation_level"]) == (3, "<a@b>", 2)
    assert doc["deadline"] == "2026-11-30T13:00:00+01:00"
    assert doc["field_level"] == "clash"


@pytest.mark.parametrize("verbosity, log_format", [(0, "text"), (1, "text"), (2, "text"), (0, "json"), (1, "json"),
                                                  (2, "json")])
def test_a_traceback_shows_from_minus_vv_on_only_whoever_logged_it(verbosity, log_format):
    stream = io.StringIO()
    configure(verbosity, log_format=log_format, stream=stream)
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("mail.log").exception("SMTP session exception")  # a library in the same process
    output = stream.getvalue()
    assert "peer went away" in output and "SMTP session exception" in output
    assert ("Traceback (most recent call last)" in output) is (verbosity > 1), output
    if log_format == "json":
        [doc] = [json.loads(line) for line in output.splitlines()]
        assert doc["error"] == "ConnectionResetError: peer went away"
        assert ("traceback" in doc) is (verbosity > 1)
    else:
        assert ("(ConnectionResetError: peer went away)" in output) is (verbosity < 2), output


def test_json_keeps_a_traceback_and_odd_text_on_one_line():
    stream = io.StringIO()
    configure(2, log_format="json", stream=stream)
    try:
        raise ValueError("two\nlines")
    except ValueError:
        logging.getLogger("mailesc").debug("failed: %s", "ünïcode\r\nnext", exc_info=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["message"] == "failed: ünïcode\r\nnext"
    assert "ValueError: two" in doc["traceback"]


def test_configuring_again_replaces_the_handler_instead_of_doubling_lines():
    first, second = io.StringIO(), io.StringIO()
    configure(1, stream=first)
    configure(1, stream=second)
    logging.getLogger("mailesc.cycle").info("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1
