"""Where replayed records go: a JSON lines or Avro file, stdout, or a Kafka topic."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from sealtrail.errors import ConfigError, TransportError
from sealtrail.reading import jsonl_bytes, record_to_json
from sealtrail.runtime.durable import private_opener


class Sink(Protocol):
    """Where replayed records go. What ``commit()`` returns is what a state file records."""

    description: str

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None: ...

    def commit(self) -> int:
        """Make what was written durable; returns the position to resume from."""
        ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON lines (one sealed record per line) to a file or to stdout."""

    def __init__(self, path: Path | None, resume_at: int | None) -> None:
        self.description = f"file:{path}" if path else "-"
        self._path = path
        # where the output lives (None for stdout): helper files go beside it
        self.directory = path.resolve().parent if path else None
        self._out: IO[bytes]
        if path is None:
            self._out = sys.stdout.buffer
        elif resume_at is None:
            self._out = open(path, "wb", opener=private_opener)  # noqa: SIM115 - closed in close()
        else:
            self._out = open(path, "r+b")  # noqa: SIM115
            self._out.truncate(resume_at)
            self._out.seek(resume_at)

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        self._out.write(jsonl_bytes(records) if jsonl is None else jsonl)

    def write_file(self, path: str) -> None:
        """Append the contents of file ``path`` (JSON lines a worker wrote), copied by the
        kernel where it can, then remove it."""
        self._out.flush()
        with open(path, "rb") as src:
            size, done = os.fstat(src.fileno()).st_size, 0
            try:
                while done < size:
                    sent = os.sendfile(self._out.fileno(), src.fileno(), done, size - done)
                    if not sent:
                        break
                    done += sent
            except OSError:
                pass  # no sendfile to this output: copy the rest through memory
            if done < size:
                src.seek(done)
                shutil.copyfileobj(src, self._out)
        os.unlink(path)

    def commit(self) -> int:
        self._out.flush()
        if self._path is None:
            return 0
        os.fsync(self._out.fileno())
        return self._out.tell()

    def close(self) -> None:
        self._out.flush()
        if self._path is not None:
            self._out.close()


class AvroSink:
    """An Avro object container file of SealedRecords (the current schema), deflate."""

    def __init__(self, path: Path, resume_at: int | None) -> None:
        import fastavro

        from sealtrail import schemas  # type: ignore[attr-defined]
        from sealtrail.core.envelope import strip_logical_types

        self.description = f"file:{path}"
        schema = fastavro.parse_schema(strip_logical_types(schemas.sealed_record()))
        if resume_at is None:
            self._out = open(path, "w+b", opener=private_opener)  # noqa: SIM115
        else:
            self._out = open(path, "r+b")  # noqa: SIM115
            self._out.truncate(resume_at)
            self._out.seek(resume_at)  # fastavro appends to a "+" file not positioned at 0
        self._writer = fastavro.write.Writer(self._out, schema, codec="deflate")

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        for record in records:
            self._writer.write(record)

    def commit(self) -> int:
        self._writer.flush()
        self._out.flush()
        os.fsync(self._out.fileno())
        return self._out.tell()

    def close(self) -> None:
        self._writer.flush()
        self._out.close()


class TopicSink:
    """A Kafka topic, through an idempotent producer. Key: the event_id (a replay repeated
    after an interruption can be deduplicated downstream by it); value: the record as JSON;
    headers: event_id, chain_id, seq."""

    def __init__(self, topic: str, kafka: Mapping[str, Any]) -> None:
        from confluent_kafka import Producer

        self.description = f"topic:{topic}"
        self._topic = topic
        self._producer = Producer({**kafka, "enable.idempotence": True,
                                   "acks": "all", "linger.ms": 20,
                                   "error_cb": lambda err: None})
        self.failed = 0
        self._first_error: str | None = None

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self._first_error is None:
                self._first_error = f"{err.name()}: {err.str()}"

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        for record in records:
            event = record.get("event") or {}
            event_id = str(event.get("event_id") or f"{record['chain_id']}:{record['seq']}")
            value = record_to_json(record).encode("utf-8")
            headers = {"event_id": event_id, "chain_id": record["chain_id"],
                       "seq": str(record["seq"])}
            while True:
                try:
                    self._producer.produce(self._topic, value, event_id.encode("utf-8"),
                                           headers=headers, on_delivery=self._delivered)
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)

    def commit(self) -> int:
        remaining = self._producer.flush(60)
        if remaining or self.failed:
            why = f" (first: {self._first_error})" if self._first_error else ""
            raise TransportError(f"topic {self._topic}: {remaining} records undelivered, "
                                 f"{self.failed} failed{why}")
        return 0

    def close(self) -> None:
        self._producer.flush(60)


def _check_resumable(path: Path, resume_at: int | None) -> None:
    if resume_at is None:
        return
    size = path.stat().st_size if path.exists() else -1
    if size < resume_at:
        what = "is gone" if size < 0 else "is shorter than the interrupted run left it"
        raise ConfigError(f"cannot resume into {path}: it {what}; remove its state file "
                          "to start again")


def open_sink(dest: str, *, kafka: Mapping[str, Any] | None = None,
              resume_at: int | None = None) -> Sink:
    """``topic:NAME``, ``file:PATH.jsonl``, ``file:PATH.avro``, ``file:PATH.parquet``
    (needs pyarrow; see sealtrail/replay/_parquet.py) or ``-`` (JSON lines on stdout).
    ``resume_at``: what ``commit()`` of a previous run returned: bytes of an output file it
    completed (records of a Parquet output's journal). ``kafka``: the client configuration
    of a topic destination (sealtrail.kafka.client.kafka_config: broker and credentials)."""
    if dest == "-":
        return JsonlSink(None, None)
    if dest.startswith("topic:") and dest[6:]:
        if not kafka or not kafka.get("bootstrap.servers"):
            raise ConfigError("--to topic: needs a broker: start `sealtrail dev up` or set "
                              "SEALTRAIL_BOOTSTRAP")
        return TopicSink(dest[6:], kafka)
    if dest.startswith("file:") and dest[5:]:
        path = Path(dest[5:])
        if path.suffix in (".jsonl", ".avro"):
            _check_resumable(path, resume_at)
        if path.suffix == ".jsonl":
            return JsonlSink(path, resume_at)
        if path.suffix == ".avro":
            return AvroSink(path, resume_at)
        if path.suffix == ".parquet":
            from sealtrail.replay._parquet import ParquetSink  # needs pyarrow, optional

            return ParquetSink(path, resume_at)
    raise ConfigError(f"--to {dest!r}: use topic:NAME, file:PATH.jsonl, file:PATH.avro, "
                      "file:PATH.parquet or -")
