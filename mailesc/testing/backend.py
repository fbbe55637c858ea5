"""Where a test's store lives: the embedded file, or a database of a throwaway PostgreSQL cluster.

``Backend("file")`` or ``Backend("postgresql", database)`` (``database`` has ``.url`` and ``.password``, as
``PostgresCluster.new_database()`` returns) gives the [store] table for ``write_config`` and opens the store for
assertions, so one test, or the crash soak, runs unchanged on both stores.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Backend"]


class Backend:
    """Where a test's store lives, for the tests that run on BOTH backends (the ``backend`` fixture in
    tests/conftest.py gives one of each): ``"file"``, the embedded store at ``<folder>/var/mailesc.json``, or
    ``"postgresql"``, a fresh database of the test cluster (its password in ``$MAILESC_DB_PASSWORD``, which the
    fixture sets, so daemons started as subprocesses read it too).

    A test changes two lines to run on both: it asks for ``backend`` and passes ``store=backend.store_section``
    to ``write_config``; the admin commands read either store, and assertions about what was recorded can open
    the store with ``backend.open(folder)`` or read ``backend.history(folder)``.
    """

    PASSWORD_ENV = "MAILESC_DB_PASSWORD"

    def __init__(self, name: str, database=None):
        self.name, self.database = name, database

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    @staticmethod
    def of(request) -> "Backend":
        """For a fixture shared by tests on one and on both backends: the ``backend`` the test asked for, else
        the file store."""
        return request.getfixturevalue("backend") if "backend" in request.fixturenames else Backend("file")

    @property
    def store_section(self) -> str:
        """The body of a config's [store] table."""
        if self.name == "file":
            return 'path = "var/mailesc.json"'
        return (f'url = "{self.database.url}"\npassword_env = "{self.PASSWORD_ENV}"\nsecurity = "plain"\n'
                f'path = "var/mailesc.json"')

    def open(self, folder: Path):
        """The store a config written by write_config in `folder` names (closing it is the caller's job):
        mailesc.store.Store for the file, PostgresStore for PostgreSQL."""
        if self.name == "file":
            from mailesc.store import Store

            return Store(Path(folder) / "var" / "mailesc.json")
        from mailesc.stores.postgres import PostgresStore

        return PostgresStore(self.database.url, self.database.password, security="plain")

    def history(self, folder: Path):
        """Everything on record (live and archived, with the reviews), as `breaches list` and `report` see it."""
        if self.name == "file":
            from mailesc.history import load_history

            return load_history(Path(folder) / "var" / "mailesc.json")
        with self.open(folder) as store:
            return store.history()
