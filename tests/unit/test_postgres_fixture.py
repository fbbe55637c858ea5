"""The throwaway PostgreSQL cluster (mailesc.testing.postgres) that the store tests stand on."""

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'mailesc[postgresql]'")
from mailesc.testing.postgres import PostgresCluster


def test_the_application_role_logs_in_over_tcp_with_its_password(postgres):
    with psycopg.connect(postgres.url, password=postgres.password) as connection:
        row = connection.execute("SELECT current_user, current_database(), inet_server_addr()::text").fetchone()
    assert row == ("mailesc", "mailesc", "127.0.0.1/32")


def test_the_url_holds_no_password_and_a_wrong_password_is_refused(postgres):
    assert postgres.password not in postgres.url
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url, password="not-" + postgres.password, connect_timeout=5)


def test_each_new_database_is_fresh_and_independent(pg_database, postgres):
    other_url, password = postgres.new_database()
    assert other_url != pg_database.url
    with psycopg.connect(pg_database.url, password=pg_database.password) as connection:
        connection.execute("CREATE TABLE only_here (x integer)")
        connection.execute("INSERT INTO only_here VALUES (1)")
    with psycopg.connect(other_url, password=password) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_new_database_of_an_existing_name_starts_empty_again(postgres):
    url, password = postgres.new_database("recreated")
    with psycopg.connect(url, password=password) as connection:
        connection.execute("CREATE TABLE left_over (x integer)")
    url, password = postgres.new_database("recreated")
    with psycopg.connect(url, password=password) as connection:
        assert connection.execute("SELECT to_regclass('left_over')").fetchone() == (None,)


def test_the_cluster_settings_are_the_throwaway_ones(postgres):
    rows = dict(postgres.admin_sql("SELECT name, setting FROM pg_settings WHERE name IN "
                                   "('fsync', 'listen_addresses', 'port')"))
    assert rows == {"fsync": "off", "listen_addresses": "127.0.0.1", "port": str(postgres.port)}


def test_stop_ends_sessions_at_once_and_start_brings_the_same_data_back(tmp_path):
    with PostgresCluster() as cluster:
        with psycopg.connect(cluster.url, password=cluster.password, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (x integer)")
            connection.execute("INSERT INTO kept VALUES (7)")
            cluster.stop()
            assert not cluster.running()
            with pytest.raises(psycopg.OperationalError):
                connection.execute("SELECT 1")
        cluster.start()
        with psycopg.connect(cluster.url, password=cluster.password) as connection:
            assert connection.execute("SELECT x FROM kept").fetchone() == (7,)
        root = cluster.root
    assert cluster.root is None and not root.exists()
