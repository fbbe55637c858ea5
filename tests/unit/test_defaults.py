"""The templates and example policy shipped in the package: used when the configured folders do not exist,
overridden one template name at a time, never drifting from the repository's templates/ and policies/;
`mailesc init` writes a starter setup to edit."""

from __future__ import annotations

import filecmp

import pytest

from mailesc import defaults
from mailesc.app import SAMPLE_CONTEXT, load_setup
from mailesc.config import load_config
from mailesc.errors import ConfigError, UsageError
from mailesc.render import Templates
from tests.support import REPO


@pytest.mark.parametrize("packaged, repository, pattern", [
    (defaults.TEMPLATES, REPO / "templates", "*.j2"),
    (defaults.POLICIES, REPO / "policies", "*.toml"),
], ids=["templates", "policies"])
def test_the_packaged_folders_are_the_repositorys(packaged, repository, pattern):
    names = sorted(path.name for path in repository.glob(pattern))
    assert names and sorted(path.name for path in packaged.glob(pattern)) == names
    match, mismatch, errors = filecmp.cmpfiles(packaged, repository, names, shallow=False)
    assert (mismatch, errors) == ([], []), "the shipped copies differ from the repository's"


OVERRIDES = [
    # (id, files in the custom folder, template, the text starts with (None: the shipped text), an HTML part from)
    ("nothing-custom", {}, "escalation", None, "shipped"),
    ("custom-text-only", {"escalation.txt.j2": "custom {{ customer }}"}, "escalation", "custom customer@", None),
    ("custom-text-and-html", {"escalation.txt.j2": "custom", "escalation.html.j2": "<p>custom</p>"}, "escalation",
     "custom", "custom"),
    ("custom-other-name", {"vip.txt.j2": "vip {{ level }}"}, "vip", "vip 1", None),
    ("custom-other-name-leaves-shipped", {"vip.txt.j2": "vip"}, "escalation", None, "shipped"),
]


@pytest.mark.parametrize("files, name, starts, html_from", [case[1:] for case in OVERRIDES],
                         ids=[case[0] for case in OVERRIDES])
def test_a_custom_folder_overrides_the_shipped_templates_per_name(tmp_path, files, name, starts, html_from):
    for filename, text in files.items():
        (tmp_path / filename).write_text(text)
    subject, text, html = Templates(tmp_path, fallback=defaults.TEMPLATES).render(name, SAMPLE_CONTEXT)
    _, shipped_text, shipped_html = Templates(defaults.TEMPLATES).render("escalation", SAMPLE_CONTEXT)
    assert text == shipped_text if starts is None else text.startswith(starts), text
    if html_from is None:
        assert html is None  # a custom text never goes out beside the stock HTML part
    elif html_from == "custom":
        assert html == "<p>custom</p>"
    else:
        assert html == shipped_html and shipped_html


def test_a_missing_templates_folder_means_the_shipped_ones(tmp_path):
    templates = Templates(tmp_path / "nope", fallback=defaults.TEMPLATES)
    assert templates.problems({"escalation", "digest", "warning", "ack"}, SAMPLE_CONTEXT) == []
    assert templates.home("escalation") == defaults.TEMPLATES
    assert Templates(tmp_path / "nope").problems({"escalation"}, SAMPLE_CONTEXT) == [
        (str(tmp_path / "nope"), "", "the templates folder does not exist")]


def test_every_broken_template_is_named_at_once(tmp_path):
    (tmp_path / "escalation.txt.j2").write_text("{% if %}")
    (tmp_path / "digest.txt.j2").write_text("{{ no_such_variable }}")
    with pytest.raises(ConfigError) as raised:
        Templates(tmp_path, fallback=defaults.TEMPLATES).check({"escalation", "digest"}, SAMPLE_CONTEXT)
    files = sorted(file for file, _, _ in raised.value.problems)
    assert files == [str(tmp_path / "digest.txt.j2"), str(tmp_path / "escalation.txt.j2")]


def test_a_config_without_policies_and_templates_folders_uses_the_shipped_ones(tmp_path):
    config = tmp_path / "mailesc.toml"
    config.write_text('[policies]\npath = "policies"\n[templates]\npath = "templates"\n')
    setup = load_setup(load_config(config), starting=True)
    assert setup.policies_path == defaults.POLICIES
    assert [rule.name for rule in setup.policies.rules] == ["vip-urgent", "vip", "default"]
    assert setup.templates.home("escalation") == defaults.TEMPLATES


def test_an_existing_policies_folder_is_used_even_when_it_is_wrong(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.toml").write_text("[[rule]]\nname = 'x'\nfirst_response = 'soon'\n")
    config = tmp_path / "mailesc.toml"
    config.write_text('[policies]\npath = "policies"\n')
    with pytest.raises(ConfigError, match="'soon' is not a duration"):
        load_setup(load_config(config))


def test_init_writes_a_setup_that_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", "x")
    monkeypatch.setenv("MAILESC_SMTP_PASSWORD", "y")
    written = defaults.init(tmp_path / "etc")
    assert written[0] == tmp_path / "etc" / "mailesc.toml"
    assert {path.relative_to(tmp_path / "etc").as_posix() for path in written} >= {
        "mailesc.toml", "policies/default.toml", "templates/escalation.txt.j2", "templates/escalation.html.j2",
        "templates/digest.txt.j2", "templates/warning.txt.j2", "templates/ack.txt.j2", "templates/daily.txt.j2"}
    setup = load_setup(load_config(written[0]), starting=True)
    assert setup.policies_path == tmp_path / "etc" / "policies"  # its own copies, to edit
    assert setup.templates.home("escalation") == tmp_path / "etc" / "templates"
    assert (setup.config.mailbox.kind, setup.config.smtp.kind) == ("imap", "smtp")


def test_init_never_overwrites(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ack.txt.j2").write_text("mine")
    with pytest.raises(UsageError, match="ack.txt.j2 already exists"):
        defaults.init(tmp_path)
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["ack.txt.j2", "templates"]  # nothing written
    assert (tmp_path / "templates" / "ack.txt.j2").read_text() == "mine"
