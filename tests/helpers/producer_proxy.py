"""A TCP proxy in front of the embedded broker that can cut off one Kafka client.

The broker advertises the proxy's address, so every client talks through it. Each
connection is identified by the ``client.id`` in its first request header. ``cut(prefix)``
stops forwarding requests of matching clients at a request boundary, lets the responses to
requests already forwarded come back, then closes those connections, and refuses new
ones until ``restore()``. The cut client sees a broker that went away; no request is left
half-known (forwarded without its response), so a test can demand exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading

_SIZE = struct.Struct(">i")


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (size,) = _SIZE.unpack(head)
    return head + await reader.readexactly(size)


def _client_id(frame: bytes) -> str:
    # size(4) api_key(2) api_version(2) correlation_id(4) client_id(int16 length + bytes)
    (length,) = struct.unpack_from(">h", frame, 12)
    return "" if length < 0 else frame[14:14 + length].decode(errors="replace")


class KafkaCutProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target`` on a thread of its own."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self._cut_prefix: str | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    def cut(self, prefix: str) -> None:
        """Cut clients whose client.id starts with ``prefix``."""
        self._cut_prefix = prefix

    def restore(self) -> None:
        self._cut_prefix = None

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _is_cut(self, client_id: str) -> bool:
        prefix = self._cut_prefix
        return prefix is not None and client_id.startswith(prefix)

    async def _handle(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            first = await _read_frame(down_r)
            client_id = _client_id(first)
            if self._is_cut(client_id):
                return
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except (OSError, asyncio.IncompleteReadError, struct.error):
            down_w.close()
            return
        outstanding = [1]
        up_w.write(first)
        stopped = asyncio.Event()

        async def requests() -> None:
            while True:
                frame = await _read_frame(down_r)
                if self._is_cut(client_id):
                    break  # dropped at a request boundary: never reaches the broker
                outstanding[0] += 1
                up_w.write(frame)
                await up_w.drain()
            # Cut: wait for the answers to what was forwarded, then hang up.
            for _ in range(100):
                if outstanding[0] <= 0:
                    break
                await asyncio.sleep(0.05)
            stopped.set()

        async def responses() -> None:
            while True:
                frame = await _read_frame(up_r)
                outstanding[0] -= 1
                down_w.write(frame)
                await down_w.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses()),
                 asyncio.ensure_future(stopped.wait())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (up_w, down_w):
            with contextlib.suppress(Exception):
                writer.close()
