"""tests/unit: tests that need no broker, registry, S3 server, database, browser or child
process. A unit test that starts a process or listens on a network socket fails, saying
that it belongs under tests/integration/ (CONTRIBUTING.md)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def _no_process_or_server(nodeid: str) -> Iterator[None]:
    popen_init, bind = subprocess.Popen.__init__, socket.socket.bind

    def no_process(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{nodeid} starts a process: move it to tests/integration/")

    def no_server(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"{nodeid} listens on {address}: move it to tests/integration/")
        bind(self, address)

    subprocess.Popen.__init__ = no_process  # type: ignore[assignment,method-assign]
    socket.socket.bind = no_server  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
        socket.socket.bind = bind  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _no_process_or_server(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _no_process_or_server(item.nodeid):
        return (yield)
