"""Helpers for testing mailesc and programs around it with real servers (like aiosmtpd's ``testing``).

Shipped in the package so that tests, benchmarks and operators' own checks start the very same throwaway
servers: ``mailesc.testing.postgres.PostgresCluster`` is a private PostgreSQL cluster on 127.0.0.1.
"""
