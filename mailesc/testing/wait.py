"""Waiting for something that happens in another thread or process, and picking a free TCP port.

``wait_until`` polls a condition instead of sleeping a fixed time: a test that waits for a daemon's effect is as
fast as the machine allows and fails with a message saying what never happened, not with a timed assertion.
``free_port`` is how every server here picks its port: bind to port 0 and read what the kernel chose (another
process may take it before the server binds, so servers that use it retry on "address in use").
"""

from __future__ import annotations

import socket
import time
from typing import Callable

__all__ = ["LOCALHOST", "free_port", "port_accepts", "wait_until"]

LOCALHOST = "127.0.0.1"


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition was not met",
):
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``AssertionError`` (with ``message`` and the elapsed time) when
    ``timeout`` seconds pass first. Exceptions raised by the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"wait_until timed out after {time.monotonic() - start:.2f}s: {message}"
            )
        time.sleep(interval)


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free right now on ``host`` (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts a TCP connection on ``host:port`` right now (a server up, or not yet gone)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
