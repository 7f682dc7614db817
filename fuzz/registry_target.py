"""Fuzzing the registry's request handling over a real socket: any bytes a client sends get
an HTTP answer that is not a 500, or a closed connection, and the server keeps serving."""

from __future__ import annotations

import functools
import socket

from fuzz.targets import Finding

#: Prefixes that steer fuzz bytes into the routes (the first byte picks one; the rest is
#: the body, or the whole request for the last).
_ROUTES = (
    b"POST /subjects/s-value/versions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
    b"POST /subjects/s-value HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
    b"POST /compatibility/subjects/s-value/versions/latest?verbose=true HTTP/1.1\r\n"
    b"Host: x\r\nContent-Length: %d\r\n\r\n",
    b"PUT /config/s-value HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
    b"PUT /mode HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
)


class _Rig:
    def __init__(self) -> None:
        from sealtrail.registry import RegistryServer

        self.server = RegistryServer(db_path=None, request_deadline=5.0).start()
        host, port = self.server.httpd.server_address[:2]
        self.address = (str(host), int(port))


@functools.cache
def rig() -> _Rig:
    return _Rig()


def _exchange(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (and close) before reading all of it
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def request_of(data: bytes) -> bytes:
    if not data:
        return b""
    pick, rest = data[0] % (len(_ROUTES) + 1), data[1:]
    if pick == len(_ROUTES):
        return rest  # raw bytes: request line, headers and all
    return _ROUTES[pick] % len(rest) + rest


def fuzz_registry(data: bytes) -> None:
    r = rig()
    answer = _exchange(r.address, request_of(data))
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.") and b" 500 " in line + b" ":
            raise Finding(f"the registry answered {line[:40]!r}: an unhandled error")
    health = _exchange(r.address, b"GET /subjects HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    if not health.startswith(b"HTTP/1.1 200"):
        raise Finding(f"the registry stopped serving: {health[:60]!r}")
