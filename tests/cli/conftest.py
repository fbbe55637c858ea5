import mailbox

import pytest

from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, Backend, write_config


@pytest.fixture
def maildir_setup(tmp_path, request):
    """A config reading tmp_path/Maildir (with a Sent folder) and writing to the outbox Maildir tmp_path/outbox;
    its store is the file, or the ``backend`` the test asks for."""
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE,
                          store=Backend.of(request).store_section)
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    return config, inbox, inbox.add_folder("Sent"), tmp_path / "outbox"
