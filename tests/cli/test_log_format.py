"""--log-format json from the command line: a failing command's last word is one more JSON object."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_errors import mailesc


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_config_error_is_one_json_object_with_the_exit_status(tmp_path, where):
    config = tmp_path / "mailesc.toml"
    config.write_text("[daemon]\npoll_seconds = 'often'\n")
    flags = ["--log-format", "json"]
    args = [*flags, "-c", str(config), "run"] if where == "before" else ["-c", str(config), "run", *flags]

    result = mailesc(*args)

    assert result.returncode == 78, result.stderr
    [doc] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (doc["level"], doc["logger"], doc["exit_status"]) == ("ERROR", "mailesc", 78)
    assert str(config) in doc["message"] and "daemon.poll_seconds" in doc["message"], doc


def test_the_text_format_keeps_the_plain_line(tmp_path):
    config = tmp_path / "mailesc.toml"
    config.write_text("[daemon]\npoll_seconds = 'often'\n")
    result = mailesc("-c", str(config), "run")
    assert result.returncode == 78
    assert result.stderr.startswith(f"mailesc: {config}: daemon.poll_seconds:"), result.stderr


def test_an_unknown_log_format_is_bad_usage():
    result = mailesc("--log-format", "xml", "status")
    assert result.returncode in (2, 64) and "--log-format" in result.stderr, result.stderr
