"""The embedded registry bounds its work against hostile clients (G10), with real
sockets: a connection cap (503 beyond it, no thread), a per-request deadline that cuts
slowloris clients however they drip bytes, and authentication right after the headers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from sealtrail.registry import RegistryServer


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    with RegistryServer(max_connections=8, request_deadline=4.0,
                        credentials="Bearer tok-123") as started:
        yield started


def _answered_503(sock: socket.socket) -> bool:
    sock.settimeout(0.5)
    try:
        return sock.recv(64, socket.MSG_PEEK).startswith(b"HTTP/1.1 503")
    except TimeoutError:
        return False
    finally:
        sock.settimeout(10)


def _connect(server: RegistryServer) -> socket.socket:
    host, port = server.httpd.server_address[:2]
    sock = socket.create_connection((str(host), int(port)), timeout=10)
    return sock


def _ok(server: RegistryServer) -> int:
    return requests.get(server.url + "/subjects", timeout=10,
                        headers={"Authorization": "Bearer tok-123"}).status_code


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reads until EOF)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def test_slowloris_connections_are_capped_and_cut_at_their_deadline(
        server: RegistryServer) -> None:
    """Three hundred connections that send half a request line and then one byte at a time
    (the attack that held 300 threads): at most 8 are served, the rest get 503 at once and
    no thread; the 8 are cut at the 2 s deadline although they keep dripping bytes within
    the socket timeout; then normal requests are served again."""
    threads_before = threading.active_count()
    held = []
    for _ in range(300):
        sock = _connect(server)
        sock.sendall(b"GET /subjects HTTP/1.1\r\nHost: x\r\n")
        held.append(sock)
    assert _ok(server) == 503  # busy while the 8 are held
    assert threading.active_count() - threads_before <= 8
    assert server.httpd.refused >= 292
    served = held[:8]
    assert all(_answered_503(s) for s in held[8:40])
    stop = threading.Event()

    def drip() -> None:  # a byte every 0.5 s: never idle long enough for the socket timeout
        while not stop.wait(0.5):
            for sock in served:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        assert all(_closed_within(sock, 20) for sock in served)
    finally:
        stop.set()
        dripper.join()
        for sock in held:
            sock.close()
    assert server.httpd.cut >= len(served)
    assert _ok(server) == 200


def test_authentication_comes_right_after_the_headers(server: RegistryServer) -> None:
    """A request without credentials announcing an 8 MiB body is answered 401 at once and
    closed, without the server waiting for (or reading) the body."""
    sock = _connect(server)
    sock.sendall(b"POST /subjects/x/versions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 8388608\r\n\r\n")
    sock.settimeout(5)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"40101" in answer or _closed_within(sock, 5)
    sock.close()
    assert _ok(server) == 200


def test_a_slow_but_complete_client_within_the_deadline_is_served(
        server: RegistryServer) -> None:
    """The deadline is per request: a keep-alive client sending requests back to back gets
    each answered, well past one deadline in total."""
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer tok-123"
        started = time.monotonic()
        while time.monotonic() - started < 5:
            assert session.get(server.url + "/subjects", timeout=10).status_code == 200
            time.sleep(0.5)
