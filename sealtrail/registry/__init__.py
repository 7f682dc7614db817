"""Embedded Confluent-compatible Schema Registry (Avro only), on the standard library.

``RegistryServer`` runs it on a background thread (tests, embedding); ``serve`` blocks (CLI).
State lives in SQLite: a file (durable across restarts) or memory (``db_path=None``).
"""

from __future__ import annotations

import logging
import signal
import threading
import types
from pathlib import Path

from sealtrail.registry._server import MAX_CONNECTIONS, REQUEST_DEADLINE, RegistryHTTPServer
from sealtrail.registry._store import Registry

__all__ = ["MAX_CONNECTIONS", "REQUEST_DEADLINE", "RegistryServer", "serve"]

log = logging.getLogger("sealtrail.registry")


class RegistryServer:
    """A registry HTTP server on a background thread.

    ``port=0`` picks a free port; ``.url`` gives the address once started. ``credentials``
    (``user:password`` for basic auth or ``Bearer <token>``) makes every request present
    them, else 401 (checked right after the headers, before any body is read); empty
    means no authentication. ``max_connections`` are served at once (more get 503), and
    each request must be done within ``request_deadline`` seconds (docs/registry.md).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | Path | None = None,
        *,
        credentials: str = "",
        max_connections: int = MAX_CONNECTIONS,
        request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        self.host, self.port, self.db_path = host, port, db_path
        self._credentials = credentials
        self._limits = {"max_connections": max_connections,
                        "request_deadline": request_deadline}
        self._registry: Registry | None = None
        self._httpd: RegistryHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def httpd(self) -> RegistryHTTPServer:
        """The running HTTP server (its ``refused`` and ``cut`` counters)."""
        if self._httpd is None:
            raise RuntimeError("RegistryServer is not started")
        return self._httpd

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._httpd is None:
            raise RuntimeError("RegistryServer is not started")
        host, port = self._httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> RegistryServer:
        """Open the store, bind the socket and serve on a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("RegistryServer is already started")
        registry = Registry(self.db_path)
        try:
            httpd = RegistryHTTPServer((self.host, self.port), registry, self._credentials,
                                       **self._limits)  # type: ignore[arg-type]
        except BaseException:
            registry.close()
            raise
        self._registry, self._httpd = registry, httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sealtrail-registry-{httpd.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, wait for handlers, close the store."""
        httpd, registry, thread = self._httpd, self._registry, self._thread
        self._httpd = self._registry = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()  # joins handler threads
        if thread is not None:
            thread.join()
        if registry is not None:
            registry.close()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str, port: int, db_path: str | None, *, credentials: str = "",
          max_connections: int = MAX_CONNECTIONS,
          request_deadline: float = REQUEST_DEADLINE) -> None:
    """Serve the registry in the foreground until SIGTERM or KeyboardInterrupt."""
    server = RegistryServer(host, port, db_path, credentials=credentials,
                            max_connections=max_connections,
                            request_deadline=request_deadline).start()
    stop = threading.Event()

    def _on_signal(signum: int, frame: types.FrameType | None) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_signal)
    if not log.hasHandlers():  # standalone use: make sure the one startup line is visible
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("registry listening on %s", server.url)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
