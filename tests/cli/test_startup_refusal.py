"""A config problem stops `check --offline`, `once` and `run` at start: exit 78, one line per problem, no loop.
Defaults that install: a config written from the README alone checks; `mailesc init` writes one to edit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailesc.testing import free_port
from tests.support import REPO

SECRET = "pw-Zq8!never-print-me"
BROKEN_POLICY = """
[calendars.office]
timezone = "Europe/Berlin"
hours = {}

[[rule]]
name = "office"
first_response = "4h"
calendar = "office"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]

[[rule]]
name = "vip"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
template = "escalaton"
"""


def mailesc(*args, env=None, cwd=None, timeout=60) -> subprocess.CompletedProcess:
    """The CLI as a process; the timeout is a guard: a daemon that loops instead of exiting fails the test."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILESC_TEST_")}
    return subprocess.run([sys.executable, "-m", "mailesc", *args], capture_output=True, text=True, timeout=timeout,
                          env={**environment, **(env or {})}, cwd=cwd or REPO)


@pytest.fixture
def broken_setup(tmp_path) -> Path:
    """An IMAP mailbox whose password variable is not set, an SMTP password file others can read, a calendar
    that never opens, and a rule naming a template that does not exist."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "rules.toml").write_text(BROKEN_POLICY)
    (tmp_path / "smtp-password").write_text(SECRET)
    (tmp_path / "smtp-password").chmod(0o644)
    config = tmp_path / "mailesc.toml"
    config.write_text(f"""[mailbox]
kind = "imap"
host = "127.0.0.1"
port = {free_port()}
security = "plain"
username = "support@example.test"
password_env = "MAILESC_TEST_UNSET_PASSWORD"
[smtp]
kind = "smtp"
host = "127.0.0.1"
port = {free_port()}
security = "plain"
username = "escalations@example.test"
password_file = "smtp-password"
[store]
path = "var/mailesc.json"
[policies]
path = "policies"
[daemon]
poll_seconds = 1
""")
    return config


@pytest.mark.parametrize("command", [["check", "--offline"], ["check"], ["once"], ["run"]],
                         ids=["check-offline", "check", "once", "run"])
def test_config_problems_stop_at_start_with_one_line_each(broken_setup, command):
    result = mailesc("-c", str(broken_setup), *command)

    assert result.returncode == 78, result.stderr
    lines = result.stderr.removeprefix("mailesc: ").splitlines()
    rules = broken_setup.parent / "policies" / "rules.toml"
    assert len(lines) == 4, result.stderr
    assert any(line.startswith(f"{rules}: calendars.office.hours: opens on no day") for line in lines), lines
    assert any(line.startswith(f"{rules} rule 2: escalate[1].template: no template 'escalaton'") for line in lines)
    assert f"{broken_setup}: mailbox.password_env: environment variable MAILESC_TEST_UNSET_PASSWORD is not set" in lines
    assert any(line.startswith(f"{broken_setup}: smtp.password_file: ") and "chmod 600" in line for line in lines)
    assert "unknown calendar" not in result.stderr and "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert not (broken_setup.parent / "var" / "mailesc.json").exists()  # refused before anything was read


@pytest.mark.parametrize("command", [["check", "--offline"], ["once"], ["run"]], ids=["check", "once", "run"])
@pytest.mark.parametrize("table, kind, problem", [
    ("mailbox", "imapp", "mailbox.kind: unknown kind 'imapp' (did you mean 'imap'?)"),
    ("smtp", "smpt", "smtp.kind: unknown kind 'smpt' (did you mean 'smtp'?)"),
], ids=["mailbox", "smtp"])
def test_a_misspelt_kind_stops_at_start_with_the_closest_name(tmp_path, command, table, kind, problem):
    config = tmp_path / "mailesc.toml"
    config.write_text(f'[{table}]\nkind = "{kind}"\n[store]\npath = "var/mailesc.json"\n[daemon]\npoll_seconds = 1\n')

    result = mailesc("-c", str(config), *command, cwd=tmp_path)

    assert result.returncode == 78, result.stderr
    assert result.stderr.splitlines() == [f"mailesc: {config}: {problem}: must be one of "
                                          + ("imap, maildir" if table == "mailbox" else "smtp, outbox, command")]
    assert not (tmp_path / "var" / "mailesc.json").exists()


def test_a_fixed_config_starts(broken_setup):
    (broken_setup.parent / "policies" / "rules.toml").write_text(
        BROKEN_POLICY.replace("hours = {}", 'hours = { mon = "08:00-18:00" }').replace("escalaton", "escalation"))
    (broken_setup.parent / "smtp-password").chmod(0o600)

    result = mailesc("-c", str(broken_setup), "check", "--offline", env={"MAILESC_TEST_UNSET_PASSWORD": "x"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("OK")


def readme_config() -> str:
    """The config the README's "Pointing it at a real mailbox" section tells an operator to write."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Pointing it at a real mailbox"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def test_a_config_written_from_the_readme_checks_with_the_shipped_templates_and_policy(tmp_path):
    (tmp_path / "mailesc.toml").write_text(readme_config())

    result = mailesc("-c", str(tmp_path / "mailesc.toml"), "check", "--offline", cwd=tmp_path,
                     env={"MAILESC_IMAP_PASSWORD": "x", "MAILESC_SMTP_PASSWORD": "y"})

    assert result.returncode == 0, result.stderr
    assert f"note: policies.path {tmp_path / 'policies'} does not exist" in result.stdout, result.stdout
    assert f"note: templates.path {tmp_path / 'templates'} does not exist" in result.stdout
    assert "escalation (shipped)" in result.stdout and result.stdout.rstrip().endswith("OK")


def test_init_writes_a_starter_setup_and_never_overwrites(tmp_path):
    target = tmp_path / "etc-mailesc"

    result = mailesc("init", str(target))

    assert result.returncode == 0, result.stderr
    assert f"wrote {target / 'mailesc.toml'}" in result.stdout
    assert (target / "policies" / "default.toml").read_text() == (REPO / "policies" / "default.toml").read_text()
    checked = mailesc("-c", str(target / "mailesc.toml"), "check", "--offline",
                      env={"MAILESC_IMAP_PASSWORD": "x", "MAILESC_SMTP_PASSWORD": "y"})
    assert checked.returncode == 0, checked.stderr
    assert "note:" not in checked.stdout and "(shipped)" not in checked.stdout  # its own copies are used
    unset = mailesc("-c", str(target / "mailesc.toml"), "check", "--offline")
    assert unset.returncode == 78 and "MAILESC_IMAP_PASSWORD is not set" in unset.stderr

    (target / "templates" / "ack.txt.j2").write_text("my own")
    again = mailesc("init", str(target))
    assert again.returncode == 64 and "already exists" in again.stderr
    assert (target / "templates" / "ack.txt.j2").read_text() == "my own"


def test_a_built_package_carries_the_templates_and_policy_as_files(tmp_path):
    """What `pip install` puts into site-packages: the package built from a copy of the source tree."""
    source = tmp_path / "source"
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for name in ("mailesc", "templates", "policies"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    built = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "-d",
                    str(built)], cwd=source, check=True, capture_output=True, timeout=120)

    for folder, pattern in (("templates", "*.j2"), ("policies", "*.toml")):
        shipped = built / "mailesc" / "data" / folder
        assert shipped.is_dir() and not shipped.is_symlink()
        names = sorted(path.name for path in (REPO / folder).glob(pattern))
        assert sorted(path.name for path in shipped.iterdir()) == names
        assert all((shipped / name).read_bytes() == (REPO / folder / name).read_bytes() for name in names)
    result = subprocess.run([sys.executable, "-m", "mailesc", "init", str(tmp_path / "init")], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(built)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "init" / "templates" / "escalation.txt.j2").is_file()
