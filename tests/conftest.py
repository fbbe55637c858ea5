"""Fixtures every test folder (unit, cli, integration) can use.

* ``postgres``    (session)  -> ``mailesc.testing.postgres.PostgresCluster``: a private PostgreSQL on 127.0.0.1
  and a free port, role ``mailesc`` with ``.password``; skipped with the reason where PostgreSQL is not installed
* ``pg_database`` (function) -> ``PgDatabase(url, password)``: a fresh, empty database per test (the url holds no
  password)
* ``backend``     (function, parametrized ``file``/``postgresql``) -> ``tests.support.Backend``: runs a test on
  both stores; ``.store_section`` for ``write_config(store=...)``, ``.open(folder)``/``.history(folder)`` for its
  assertions. The ``postgresql`` run skips with the ``postgres`` fixture's reason where PostgreSQL is missing.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from mailesc.testing.postgres import MISSING, PostgresCluster, find_bin_folder
from tests.support import Backend

PSYCOPG_MISSING = "psycopg 3 is not installed: pip install 'mailesc[postgresql]'"


class PgDatabase(NamedTuple):
    url: str
    password: str


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the whole session (``.url``, ``.password``, ``.new_database()``)."""
    if find_bin_folder() is None:
        pytest.skip(MISSING)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip(PSYCOPG_MISSING)
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def pg_database(postgres, request) -> PgDatabase:
    """A fresh, empty database owned by ``mailesc`` for one test (dropped with the cluster at the session's end)."""
    postgres.start()  # revives the server if an earlier test stopped it
    return PgDatabase(*postgres.new_database())


@pytest.fixture(params=["file", "postgresql"])
def backend(request, monkeypatch) -> Backend:
    """The store a test runs on, once per backend: the embedded file, then a fresh PostgreSQL database (whose
    password the config reads from $MAILESC_DB_PASSWORD, set here for this process and the daemons it starts)."""
    if request.param == "file":
        return Backend("file")
    database = request.getfixturevalue("pg_database")
    monkeypatch.setenv(Backend.PASSWORD_ENV, database.password)
    return Backend("postgresql", database)
