"""Parquet output for replay: typed columns derived from the Avro SealedRecord schema.

pyarrow is optional (``pip install 'sealtrail[parquet]'``); it is imported only when a
``file:PATH.parquet`` sink is opened.

Column types (:func:`arrow_type`): an Avro record becomes a struct, ``["null", X]`` a
nullable X (every other field is non-nullable), map a ``map<string, X>``, array a list,
bytes binary, fixed fixed-size binary, string string, long int64, int int32, boolean bool,
float/double float32/float64, enum a string (Parquet dictionary-encodes it, so the symbol
is stored once per page), and ``timestamp-micros`` a ``timestamp[us, tz=UTC]`` (the same
microseconds, typed, so ``ingested_at`` and ``event.occurred_at`` are time columns in
every engine). The Avro schema the columns come from is kept in the file's key-value
metadata under ``sealtrail.avro_schema``.

Resumability. A Parquet file cannot be appended to once its footer is written, and
without its footer it cannot be read at all. So the records go first to a journal next
to the output, ``PATH.parquet.journal.arrows``: an Arrow IPC stream (the schema, then
one record batch per write), appended to and fsynced by ``commit()``, which returns the
number of records that are durable there. ``close()`` writes ``PATH.parquet`` from the
journal (row groups of :data:`ROW_GROUP_ROWS` rows, zstd; a temporary file renamed into
place, so a reader never sees half a Parquet file) and removes the journal.

A resumed run (``resume_at`` = records committed by the interrupted run):

* after a crash (kill -9, power loss: ``close()`` never ran) the journal is still
  there: it is cut back to the first ``resume_at`` records and appended to;
* after an orderly interruption (Ctrl-C, a break, an I/O error: ``close()`` wrote the
  Parquet file and removed the journal) a journal is rebuilt from the first
  ``resume_at`` rows of ``PATH.parquet``.

Either way the completed file holds every record exactly once, in replay order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from sealtrail.errors import ConfigError
from sealtrail.runtime.durable import fsync_dir, private_opener

__all__ = ["JOURNAL_SUFFIX", "ROW_GROUP_ROWS", "ParquetSink", "arrow_schema", "arrow_type"]

#: Rows per Parquet row group of the finished file.
ROW_GROUP_ROWS = 128 * 1024
#: Records buffered in memory before they are appended to the journal as one batch.
BATCH_ROWS = 8 * 1024
#: Name of the journal: the output's name plus this suffix.
JOURNAL_SUFFIX = ".journal.arrows"
COMPRESSION = "zstd"


def _pyarrow() -> Any:
    """The pyarrow module, or ConfigError saying how to install it."""
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise ConfigError("parquet output needs pyarrow: pip install 'sealtrail[parquet]' "
                          "(or write file:PATH.jsonl or file:PATH.avro)") from None
    return pyarrow


_PRIMITIVE = {"string": "string", "bytes": "binary", "long": "int64", "int": "int32",
              "boolean": "bool_", "float": "float32", "double": "float64"}
_TIMESTAMP_UNIT = {"timestamp-micros": "us", "timestamp-millis": "ms"}


def arrow_type(avro: Any, named: dict[str, Any] | None = None,
               namespace: str = "") -> tuple[Any, bool]:
    """The Arrow type of Avro type ``avro`` and whether it is nullable. ``named`` collects
    named types (record, enum, fixed) so that later references by name resolve."""
    pa = _pyarrow()
    named = {} if named is None else named
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ConfigError(f"parquet output: union {avro!r} has no single column type")
        return arrow_type(branches[0], named, namespace)[0], len(branches) < len(avro)
    if isinstance(avro, str):
        if avro in _PRIMITIVE:
            return getattr(pa, _PRIMITIVE[avro])(), False
        if avro == "null":
            return pa.null(), True
        full = avro if "." in avro else f"{namespace}.{avro}" if namespace else avro
        for name in (full, avro):
            if name in named:
                return named[name], False
        raise ConfigError(f"parquet output: unknown Avro type {avro!r}")
    kind = avro.get("type")
    unit = _TIMESTAMP_UNIT.get(avro.get("logicalType", ""))
    if unit is not None and kind == "long":
        return pa.timestamp(unit, tz="UTC"), False
    if kind in ("record", "enum", "fixed"):
        ns = avro.get("namespace", namespace)
        name = avro["name"] if "." in avro["name"] else f"{ns}.{avro['name']}".lstrip(".")
        if kind == "record":
            fields = []
            for field in avro["fields"]:
                ftype, nullable = arrow_type(field["type"], named, name.rpartition(".")[0])
                fields.append(pa.field(field["name"], ftype, nullable=nullable))
            named[name] = pa.struct(fields)
        else:
            named[name] = pa.string() if kind == "enum" else pa.binary(int(avro["size"]))
        return named[name], False
    if kind == "array":
        item, nullable = arrow_type(avro["items"], named, namespace)
        return pa.list_(pa.field("item", item, nullable=nullable)), False
    if kind == "map":
        value, nullable = arrow_type(avro["values"], named, namespace)
        return pa.map_(pa.string(), pa.field("value", value, nullable=nullable)), False
    if isinstance(kind, str | list | dict):  # {"type": "long"} and the like
        return arrow_type(kind, named, namespace)
    raise ConfigError(f"parquet output: Avro type {avro!r} has no column type")


def arrow_schema(avro_schema: dict[str, Any] | None = None) -> Any:
    """The Arrow schema of the SealedRecord (current version by default): one column per
    top-level field, nested records as structs."""
    pa = _pyarrow()
    if avro_schema is None:
        from sealtrail import schemas  # type: ignore[attr-defined]

        avro_schema = schemas.sealed_record()
    struct, _ = arrow_type(avro_schema)
    return pa.schema(list(struct), metadata={
        "sealtrail.record": str(avro_schema.get("name", "")),
        "sealtrail.avro_schema": json.dumps(avro_schema, separators=(",", ":")),
    })


class ParquetSink:
    """A Parquet file of SealedRecords, through a resumable journal (see the module)."""

    def __init__(self, path: Path, resume_at: int | None) -> None:
        self._pa = _pyarrow()
        self.description = f"file:{path}"
        self._path = path
        self._journal_path = path.with_name(path.name + JOURNAL_SUFFIX)
        self._schema = arrow_schema()
        self._buffer: list[dict[str, Any]] = []
        self._out: IO[bytes]
        self._rows = 0
        self._closed = False
        if resume_at is None:
            self._start()
        elif self._journal_path.exists():
            self._cut_journal(resume_at)
        elif path.exists():
            self._journal_from_output(resume_at)
        else:
            raise ConfigError(f"cannot resume into {path}: neither it nor its journal "
                              f"{self._journal_path.name} exists any more; remove its state "
                              "file to start again")

    # -- opening ------------------------------------------------------------------------

    def _start(self) -> None:
        """A fresh run: the output of an earlier run is replaced, as for JSON lines."""
        self._path.unlink(missing_ok=True)
        self._out = open(self._journal_path, "wb",  # noqa: SIM115 - closed in close()
                         opener=private_opener)
        self._out.write(self._schema.serialize().to_pybytes())
        self._durable()
        fsync_dir(self._journal_path.parent)

    def _cut_journal(self, resume_at: int) -> None:
        """Keep the first ``resume_at`` records of the journal, drop what follows."""
        pa = self._pa
        with open(self._journal_path, "rb") as f:
            reader = pa.ipc.MessageReader.open_stream(f)
            try:
                schema = pa.ipc.read_schema(reader.read_next_message())
            except (StopIteration, OSError, pa.ArrowInvalid):
                schema = None
            if schema is None or not schema.equals(self._schema):
                raise ConfigError(f"cannot resume into {self._path}: its journal "
                                  f"{self._journal_path} is not a journal of this sealtrail's "
                                  "records; remove both and the state file to start again")
            end, rows = f.tell(), 0
            while rows < resume_at:
                try:
                    rows += pa.ipc.read_record_batch(reader.read_next_message(),
                                                     schema).num_rows
                except (StopIteration, OSError, pa.ArrowInvalid):
                    break
                end = f.tell()
        if rows != resume_at:
            raise ConfigError(f"cannot resume into {self._path}: its journal holds "
                              f"{rows} complete records, the state file says {resume_at}; "
                              "remove the journal, the output and the state file to start "
                              "again")
        self._out = open(self._journal_path, "r+b")  # noqa: SIM115
        self._out.truncate(end)
        self._out.seek(end)
        self._rows = rows
        self._durable()

    def _journal_from_output(self, resume_at: int) -> None:
        """Rebuild the journal from the first ``resume_at`` rows of a finished file."""
        pq = self._pa.parquet
        try:
            found = pq.ParquetFile(self._path)
        except (OSError, self._pa.ArrowInvalid) as exc:
            raise ConfigError(f"cannot resume into {self._path}: it is not a Parquet file "
                              f"({exc}); remove it and its state file to start again") from None
        if not found.schema_arrow.equals(self._schema):
            raise ConfigError(f"cannot resume into {self._path}: its columns are not the "
                              "current SealedRecord's; remove it and its state file to start "
                              "again")
        if found.metadata.num_rows < resume_at:
            raise ConfigError(f"cannot resume into {self._path}: it has "
                              f"{found.metadata.num_rows} rows, fewer than the {resume_at} "
                              "the interrupted run completed; remove its state file to start "
                              "again")
        tmp = self._journal_path.with_name(self._journal_path.name + ".tmp")
        with open(tmp, "wb", opener=private_opener) as out:
            out.write(self._schema.serialize().to_pybytes())
            left = resume_at
            for batch in found.iter_batches(batch_size=BATCH_ROWS):
                if left <= 0:
                    break
                batch = batch.slice(0, left).cast(self._schema)
                out.write(batch.serialize().to_pybytes())
                left -= batch.num_rows
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._journal_path)
        fsync_dir(self._journal_path.parent)
        self._out = open(self._journal_path, "r+b")  # noqa: SIM115
        self._out.seek(0, os.SEEK_END)
        self._rows = resume_at

    # -- the Sink protocol --------------------------------------------------------------

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        self._buffer.extend(records)
        if len(self._buffer) >= BATCH_ROWS:
            self._append()

    def commit(self) -> int:
        """Append what is buffered to the journal and fsync it; the records now durable."""
        self._append()
        self._durable()
        return self._rows

    def close(self) -> None:
        """Write PATH.parquet from the journal and remove the journal."""
        if self._closed:
            return
        self._closed = True
        try:
            self._append()
            self._durable()
        finally:
            self._out.close()
        self._finish()

    # -- internals ----------------------------------------------------------------------

    def _append(self) -> None:
        if not self._buffer:
            return
        batch = self._pa.RecordBatch.from_pylist(self._buffer, schema=self._schema)
        self._out.write(batch.serialize().to_pybytes())
        self._rows += batch.num_rows
        self._buffer = []

    def _durable(self) -> None:
        self._out.flush()
        os.fsync(self._out.fileno())

    def _finish(self) -> None:
        pa, pq = self._pa, self._pa.parquet
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        pending: list[Any] = []
        held = 0
        os.close(private_opener(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))  # 0600 first
        with pa.memory_map(str(self._journal_path)) as source:
            reader = pa.ipc.open_stream(source)
            with pq.ParquetWriter(tmp, self._schema, compression=COMPRESSION) as writer:
                for batch in reader:
                    pending.append(batch)
                    held += batch.num_rows
                    while held >= ROW_GROUP_ROWS:
                        table = pa.Table.from_batches(pending, self._schema)
                        writer.write_table(table.slice(0, ROW_GROUP_ROWS),
                                           row_group_size=ROW_GROUP_ROWS)
                        rest = table.slice(ROW_GROUP_ROWS)
                        pending, held = rest.to_batches(), rest.num_rows
                if held:
                    writer.write_table(pa.Table.from_batches(pending, self._schema),
                                       row_group_size=ROW_GROUP_ROWS)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        fsync_dir(self._path.parent)
        self._journal_path.unlink()
