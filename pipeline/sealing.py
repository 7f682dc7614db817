"""Sealing one raw record into its chain: decode it (or reject it), refuse a duplicate
event id, redact, seal and encode the SealedRecord; and closing a batch with its seal.
No Kafka I/O: this is the sealer's whole per-record hot path (and the benchmark's floor).

Entries are sealed unsigned and each batch (one Kafka transaction) ends with a batch seal,
one Ed25519 signature over the batch's Merkle root (record format 2, docs/format.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import seal, seal_batch
from sealtrail.core.hashing import sha256
from sealtrail.core.redaction import Policy
from sealtrail.core.signing import Signer
from sealtrail.errors import TransportError
from sealtrail.pipeline.decode import Decoded, RawDecoder, Rejected
from sealtrail.pipeline.guard import internal_rejection
from sealtrail.pipeline.recovery import ChainState
from sealtrail.schemas.cache import WriterSchemas

__all__ = ["RecordSealer"]

log = logging.getLogger("sealtrail.sealer")

_EVENT_TYPE = "io.sealtrail.AuditEvent"
_REJECTION_TYPE = "io.sealtrail.Rejection"


def _tagged(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its union branches named (fastavro's tuple notation): the same bytes,
    without fastavro validating the event against each branch to pick one."""
    if record["event"] is not None:
        return {**record, "event": (_EVENT_TYPE, record["event"])}
    return {**record, "rejection": (_REJECTION_TYPE, record["rejection"])}


class RecordSealer:
    """Seals raw records as the next entries of their chains, signed by ``signer``,
    redacted by ``policy``; the SealedRecord schema is registered for the sealed topic."""

    def __init__(self, settings: Settings, *, signer: Signer, policy: Policy,
                 registry: SchemaRegistryClient, writers: WriterSchemas,
                 clock: Callable[[], int]) -> None:
        self.policy = policy
        self._signer = signer
        self._clock = clock
        self._dedupe_window = settings.dedupe_window
        reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
        self._decoder = RawDecoder(writers, reader, max_bytes=settings.max_event_bytes)
        sealed_schema = schemas.sealed_record()
        self._sealed = AvroCodec(sealed_schema)
        self._sealed_schema_id = registry.register_schema(
            f"{settings.sealed_topic}-value", Schema(json.dumps(sealed_schema), "AVRO")
        )

    def seal_value(
        self, state: ChainState, value: bytes | None, topic: str, partition: int, offset: int
    ) -> tuple[bytes, dict[str, Any], Rejected | None]:
        """Seal one raw record (its value and coordinates) as the next entry of ``state``'s
        chain: the framed sealed record, the record, and the rejection if it was rejected.

        Whatever the record holds, it is sealed: any failure on its path but a transport
        one (retried) becomes a rejection with reason INTERNAL (sealtrail.pipeline.guard),
        and ``state`` only moves once the record is sealed and encoded."""
        try:
            return self._seal_outcome(state, self._decoder.decode(value), value, topic,
                                      partition, offset)
        except TransportError:
            raise
        except Exception as exc:
            rejected = internal_rejection(exc, value)
            log.error("partition %d offset %d: %s", partition, offset, rejected.detail)
            return self._seal_outcome(state, rejected, value, topic, partition, offset)

    def _unsealed(self, outcome: Decoded | Rejected, value: bytes | None, topic: str,
                  partition: int, offset: int) -> dict[str, Any]:
        """The entry to seal: the redacted event, or the rejection with the raw value's
        digest and size (never its bytes)."""
        policy = self.policy
        unsealed: dict[str, Any] = {
            "kind": "EVENT",
            "event": None,
            "rejection": None,
            "redaction": {"policy_id": policy.policy_id, "policy_version": policy.version,
                          "fields": []},
            "ingested_at": self._clock(),
            "source": {"topic": topic, "partition": partition, "offset": offset,
                       "schema_id": outcome.schema_id},
        }
        if isinstance(outcome, Decoded):
            unsealed["redaction"]["fields"] = policy(outcome.event)
            unsealed["event"] = outcome.event
        else:
            raw = value or b""
            unsealed["kind"] = "REJECTION"
            unsealed["rejection"] = {"reason": outcome.reason, "detail": outcome.detail[:1000],
                                     "raw_sha256": sha256(raw), "raw_size": len(raw)}
        return unsealed

    def _seal_outcome(
        self, state: ChainState, outcome: Decoded | Rejected, value: bytes | None, topic: str,
        partition: int, offset: int,
    ) -> tuple[bytes, dict[str, Any], Rejected | None]:
        if isinstance(outcome, Decoded):
            event_id = outcome.event["event_id"]
            original = state.recent_ids.get(event_id)
            if original is not None:
                outcome = Rejected("DUPLICATE", f"event_id ({len(event_id)} characters) "
                                   f"was sealed as seq {original} of chain "
                                   f"{state.head.chain_id}", outcome.schema_id)
        unsealed = self._unsealed(outcome, value, topic, partition, offset)
        rejected = outcome if isinstance(outcome, Rejected) else None
        record = seal(state.head, unsealed, self._signer, sign=False)
        framed = self._framed(record)
        state.head = state.head.advance(record)
        state.batch.append(record["entry_hash"])
        state.next_source_offset = offset + 1
        if rejected is None:
            state.remember(record["event"]["event_id"], record["seq"], self._dedupe_window)
        return framed, record, rejected

    def close_batch(self, state: ChainState, last: dict[str, Any]) -> bytes:
        """Make ``last``, the entry :meth:`seal_value` sealed last for ``state``, the seal
        of the open batch (every entry since the chain's last signed one): the framed
        sealed record to write in its place, in the same transaction as the batch."""
        seal_batch(state.batch_first_seq, state.batch, last, self._signer)
        state.batch = []
        return self._framed(last)

    def _framed(self, record: dict[str, Any]) -> bytes:
        body = self._sealed.encode_native(record)
        if body is None:  # not built, or a value only fastavro takes: its bytes, its errors
            body = self._sealed.encode(_tagged(record))
        return frame(self._sealed_schema_id, body)
