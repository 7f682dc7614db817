"""The registry's HTTP server: bounded connections and request deadlines (G10)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from sealtrail.registry._http import CONTENT_TYPE, RegistryHandler, expected_authorization
from sealtrail.registry._store import Registry

log = logging.getLogger("sealtrail.registry")

#: Connections served at once; more are answered 503 and closed without a thread.
MAX_CONNECTIONS = 64
#: Seconds a connection has to deliver a whole request (from its accept, or from the end
#: of the previous response) and get its answer; then it is cut, however it drips bytes.
REQUEST_DEADLINE = 30.0
_BUSY = json.dumps({"error_code": 50302, "message": "Too many connections; retry"}).encode()


class RegistryHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that bounds its work: at most ``max_connections`` served at
    once (one thread each; more are answered 503 and closed at once), each request done
    within ``request_deadline`` seconds or its connection cut (a reaper thread), and it can
    cut its open keep-alive connections on close."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128  # listen backlog: bursts of clients must not be reset

    def __init__(
        self, address: tuple[str, int], registry: Registry, credentials: str = "", *,
        max_connections: int = MAX_CONNECTIONS, request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        if max_connections < 1 or request_deadline <= 0:
            raise ValueError("max_connections must be >= 1 and request_deadline > 0")
        handler = type(
            "BoundRegistryHandler",
            (RegistryHandler,),
            {"registry": registry, "authorization": expected_authorization(credentials)},
        )
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        self.refused = 0  # connections answered 503
        self.cut = 0  # connections cut at their deadline
        self._open: set[socket.socket] = set()
        self._deadlines: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(address, handler)
        self._reaper = threading.Thread(target=self._reap, daemon=True,
                                        name="sealtrail-registry-reaper")
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = len(self._open) >= self.max_connections
            if not full:
                self._open.add(request)
                self._deadlines[request] = time.monotonic() + self.request_deadline
        if full:
            self.refused += 1
            self._refuse(request)
            return
        super().process_request(request, client_address)

    @staticmethod
    def _refuse(request: socket.socket) -> None:
        """503 and close, from the accepting thread, never blocking on the client."""
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                         + CONTENT_TYPE.encode() + b"\r\nContent-Length: "
                         + str(len(_BUSY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BUSY)
        with contextlib.suppress(OSError):
            request.close()

    def restart_deadline(self, request: socket.socket) -> None:
        with self._open_lock:
            if request in self._deadlines:
                self._deadlines[request] = time.monotonic() + self.request_deadline

    def _reap(self) -> None:
        """Cut every connection whose request is past its deadline."""
        while not self._closing.wait(min(0.25, self.request_deadline / 4)):
            now = time.monotonic()
            with self._open_lock:
                late = [s for s, at in self._deadlines.items() if at <= now]
                for sock in late:
                    del self._deadlines[sock]
            for sock in late:
                self.cut += 1
                log.debug("registry: request deadline passed; cutting the connection")
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
            self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection-level failures are logged at DEBUG, not printed to stderr."""
        log.debug("registry: connection error from %s", client_address, exc_info=True)
