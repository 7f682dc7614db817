"""Export with proof: the events a search query matches, each with an RFC 6962 inclusion
proof to its signed checkpoint, in one zip an outside auditor checks offline.

Bundle layout (``sealtrail-export/v1``)::

    README.txt                          for the recipient: what this is, how to check it
    manifest.json                       query, time range asked and covered, count, operator,
                                        archive, created_at, SHA-256 of every other file
    proofs/<n>-<event_id>.json          one proof per event, the format of `sealtrail prove`
                                        (sealtrail-proof/v1 or v2, see
                                        sealtrail/verify/proof.py)
    checkpoints/<chain>/<index>.json    every signed checkpoint a proof leads to, as archived
    events.jsonl                        the proven entries, one per line: line i is the
                                        canonical JSON of proof i's entry, byte for byte
    keys/public.json                    the keyring the exporter used (NOT to be trusted by
                                        the recipient: check with a keyring obtained apart)

Each proof is checked by :func:`sealtrail.verify.proof.verify_proof` (entry hash, entry
signature or batch seal, inclusion proof, checkpoint signature), the same code as
``sealtrail prove``, and ``events.jsonl`` must be exactly the proven entries, so nothing
in it is unproven. A bundle with no proof proves nothing and fails. What a bundle proves:
every event in it was sealed and archived unaltered under a trusted key. What it does not
prove: that the query's result is complete (the search index is a finding aid, not
evidence). The manifest (query, time ranges, count, operator) is unsigned context: it can
only make verification fail (when it disagrees with the bundle), never pass.

Building a bundle reads the archive through the one verifier (:mod:`sealtrail.verify`):
every checkpoint of a chain is checked, and each segment a proof comes from is checked
against its checkpoint before any proof is made from it.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

from sealtrail.archive import ArchiveStore
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain_walk import PlannedSegment
from sealtrail.core.signing import Keyring
from sealtrail.core.times import format_time
from sealtrail.errors import DataError, IntegrityError, MalformedInputError
from sealtrail.inputs import BoundedZip, Shape, ZipLimits, check_shape, load_json
from sealtrail.reading import jsonl_bytes
from sealtrail.search import Coverage, IndexRow, SearchQuery
from sealtrail.verify import ArchiveReader
from sealtrail.verify.proof import MAX_PROOF_BYTES, proof_document, verify_proof

__all__ = ["BUNDLE_FORMAT", "ExportResult", "VerifyExportResult", "build_export",
           "open_bundle", "verify_export"]

BUNDLE_FORMAT = "sealtrail-export/v1"

README = """\
sealtrail evidence export
=========================

This bundle holds {count} audit events that matched the query

    {query}

asked for the time range {asked} (occurred_at, UTC). The events found occurred
{covered}. {coverage}
Exported by {operator} from {archive} at {created}.

What is in it
-------------
manifest.json        the query, the time ranges, the count and the SHA-256 of every file
proofs/*.json        one proof per event (format sealtrail-proof/v1, or v2 for an entry
                     signed by a batch seal): the sealed record, its Ed25519 signature
                     (v2: the batch seal's, with an RFC 6962 inclusion proof of the entry
                     in its batch), an RFC 6962 inclusion proof and the signed checkpoint
                     whose Merkle root the proof leads to
checkpoints/         the signed checkpoints, exactly as archived
events.jsonl         the same events, one JSON object per line, for reading: exactly
                     the proven entries (verify-export checks it byte for byte)
keys/public.json     the public keyring the exporter used

How to check it
---------------
Do NOT trust keys/public.json: obtain the publisher's public keyring through a separate
channel, then run (offline, no network needed):

    sealtrail verify-export bundle.zip --keys THEIR-public.json

It checks, for every proof: the entry hash recomputed from the record's canonical bytes,
the entry's signature (or the seal of its batch) by a key of your keyring valid when it
was sealed, the inclusion proof up to the checkpoint's Merkle root, and the checkpoint's
own signature. The byte formats are specified in sealtrail's docs/format.md ("Canonical
JSON", "Entry hash", "Merkle tree", "Checkpoints", "Proof file") so that you can also check
them with your own code.

What it proves, and what it does not
------------------------------------
Each event in this bundle was sealed and archived, unaltered, under a trusted key.
The bundle does not prove that the query's result is complete: events were found with
a search index, which is not evidence. The manifest (query, time ranges, count, who
exported it) is not signed: it is context, and verification never relies on it.
"""


@dataclass
class ExportResult:
    count: int
    chains: int
    checkpoints: int
    truncated: bool
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def _first_break(reader: ArchiveReader, chain_id: str) -> str:
    """Where ``chain_id`` first breaks, exactly as verify names it (the whole chain is
    walked: only when an export found something wrong, so the name is verify's)."""
    from sealtrail.verify import walk_chain

    walk = walk_chain(reader.store, chain_id, reader.keyring, now=reader.now)
    return str(walk.finding) if walk.finding else "the chain does not check out"


def _segment_of(starts: list[int], seq: int) -> int:
    return bisect.bisect_right(starts, seq) - 1


_Proof = tuple[IndexRow, bytes, dict[str, Any]]  # the row, its proof, its sealed record


def _prove_chain(reader: ArchiveReader, chain_id: str, rows: list[IndexRow],
                 checkpoints: dict[str, bytes]) -> list[_Proof]:
    """Proofs of ``rows`` (all of chain ``chain_id``), segment by segment; the checkpoints
    they rest on are added to ``checkpoints``."""
    plan = reader.plan(chain_id)
    real = plan.segments
    if not real:
        raise DataError(f"chain {chain_id}: no usable checkpoint in the archive"
                        + (f" ({plan.problem})" if plan.problem else ""))
    starts = [p.checkpoint.first_seq for p in real]
    by_segment: dict[int, list[IndexRow]] = {}
    for row in rows:
        position = _segment_of(starts, row.seq)
        if position < 0 or row.seq > real[position].checkpoint.last_seq:
            raise DataError(f"chain {chain_id} seq {row.seq} (event {row.event_id}) is "
                            "not covered by a checked checkpoint"
                            + (f": {_first_break(reader, chain_id)}" if plan.problem
                               else ""))
        by_segment.setdefault(position, []).append(row)
    proofs: list[_Proof] = []
    for position, seg_rows in sorted(by_segment.items()):
        proofs += _prove_segment(reader, chain_id, real[position], seg_rows, checkpoints)
    return proofs


def _prove_segment(reader: ArchiveReader, chain_id: str, planned: PlannedSegment,
                   rows: list[IndexRow], checkpoints: dict[str, bytes]) -> list[_Proof]:
    """Inclusion proofs of ``rows`` in the segment ``planned``, checked as a whole first;
    each proof checked before it is handed out."""
    cp = planned.checkpoint
    # A hole in the raw offsets (G1) does not unmake the proofs of its entries.
    outcome = reader.check(planned, want_records=True, gaps_fatal=False)
    if outcome.finding is not None:
        raise IntegrityError(f"{_first_break(reader, chain_id)}; run `sealtrail verify`")
    records = outcome.records or []
    cp_key = f"chains/{chain_id}/checkpoints/{cp.index:010d}.json"
    checkpoints[cp_key] = planned.signed.to_bytes()
    proofs: list[_Proof] = []
    for row in rows:
        index = row.seq - cp.first_seq
        record = records[index]
        event = record.get("event") or {}
        if event.get("event_id") != row.event_id:
            raise DataError(f"chain {chain_id} seq {row.seq} holds event "
                            f"{event.get('event_id')!r}, the index says {row.event_id!r}:"
                            " rebuild the index (`sealtrail index rebuild`)")
        proof = canonical_json(proof_document(row.event_id, records, index, cp_key,
                                              planned.signed))
        verify_proof(proof, reader.keyring)  # never hand out a proof that does not check
        proofs.append((row, proof, record))
    return proofs


def _bundle_files(proofs: list[_Proof], checkpoints: dict[str, bytes], keyring: Keyring
                  ) -> dict[str, bytes]:
    """The bundle's evidence files: proofs, checkpoints, events.jsonl, the public keys."""
    files: dict[str, bytes] = {}
    for n, (row, proof, _) in enumerate(proofs):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in row.event_id)[:80]
        files[f"proofs/{n:06d}-{safe}.json"] = proof
    for key, data in checkpoints.items():
        files["checkpoints/" + key.removeprefix("chains/").replace("/checkpoints/", "/")] = data
    files["events.jsonl"] = events_jsonl([json.loads(p)["entry"] for _, p, _ in proofs])
    files["keys/public.json"] = (json.dumps(keyring.to_json(), indent=2) + "\n").encode()
    return files


def _manifest(rows: list[IndexRow], query: SearchQuery, coverage: Coverage, count: int,
              truncated: bool, operator: str, archive: str, files: dict[str, bytes]
              ) -> dict[str, Any]:
    """The bundle's manifest: context (query, ranges, who), and the digest of every file."""
    occurred = [row.occurred_at for row in rows]
    return {
        "format": BUNDLE_FORMAT,
        "query": query.text,
        "filters": {column: list(values) for column, values in query.filters},
        "words": list(query.words),
        "time_range_asked": {"since": query.since, "until": query.until,
                             "since_utc": format_time(query.since),
                             "until_utc": format_time(query.until)},
        "time_range_found": {"first": min(occurred, default=None),
                             "last": max(occurred, default=None)},
        "index_coverage": coverage.describe(query.since, query.until),
        "count": count,
        "truncated": truncated,
        "operator": operator,
        "archive": archive,
        "created_at": time.time_ns() // 1000,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def _readme(manifest: dict[str, Any], query: SearchQuery) -> str:
    """README.txt: what the bundle holds and how to check it, from its manifest."""
    found = manifest["time_range_found"]
    return README.format(
        count=manifest["count"], query=query.text or "(everything)",
        asked=f"{format_time(query.since)} .. {format_time(query.until)}",
        covered=(f"{format_time(found['first'])} .. {format_time(found['last'])}"
                 if found["first"] is not None else "(no event matched)"),
        coverage=manifest["index_coverage"] + "."
        + (" The result was TRUNCATED at the export limit." if manifest["truncated"] else ""),
        operator=manifest["operator"], archive=manifest["archive"],
        created=format_time(manifest["created_at"]))


def build_export(
    store: ArchiveStore, keyring: Keyring, rows: list[IndexRow], query: SearchQuery, *,
    coverage: Coverage, operator: str, truncated: bool = False,
) -> tuple[bytes, ExportResult]:
    """The zip bytes of an export of ``rows`` (search results), every event proven against
    the archive. DataError when an event cannot be proven (missing or altered evidence)."""
    reader = ArchiveReader(store, keyring)
    by_chain: dict[str, list[IndexRow]] = {}
    for row in rows:
        by_chain.setdefault(row.chain_id, []).append(row)
    proofs: list[_Proof] = []
    checkpoints: dict[str, bytes] = {}
    for chain_id, chain_rows in sorted(by_chain.items()):
        proofs += _prove_chain(reader, chain_id, chain_rows, checkpoints)
    files = _bundle_files(proofs, checkpoints, keyring)
    manifest = _manifest(rows, query, coverage, len(proofs), truncated, operator, store.url,
                         files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("README.txt", _readme(manifest, query))
        bundle.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name, data in sorted(files.items()):
            bundle.writestr(name, data)
    return buf.getvalue(), ExportResult(len(proofs), len(by_chain), len(checkpoints),
                                        truncated, manifest)


def events_jsonl(entries: list[dict[str, Any]]) -> bytes:
    """``events.jsonl``: the canonical JSON of each proven entry (the whole sealed record,
    byte strings as lowercase hex), one per line, in proof order: the JSON lines every
    tool writes (:func:`sealtrail.reading.jsonl_bytes`)."""
    return jsonl_bytes(entries)


@dataclass
class VerifyExportResult:
    count: int
    manifest: dict[str, Any]
    problems: list[str]
    events_checked: bool = False  # events.jsonl was present and matched the proofs

    @property
    def ok(self) -> bool:
        return not self.problems and self.count > 0


#: The largest bundle verify-export reads, and the most its members may inflate to.
MAX_BUNDLE_BYTES = 2 * 1024**3
BUNDLE_LIMITS = ZipLimits()
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_OPTIONAL_TEXT = (str, type(None))
MANIFEST_SHAPE = Shape({
    "format": str, "files": dict, "count": int, "query": _OPTIONAL_TEXT,
    "operator": _OPTIONAL_TEXT,
    "time_range_asked": Shape({"since_utc": _OPTIONAL_TEXT, "until_utc": _OPTIONAL_TEXT},
                              exact=False, optional=frozenset({"since_utc", "until_utc"})),
}, exact=False, optional=frozenset({"query", "operator", "time_range_asked"}))


def open_bundle(data: bytes) -> tuple[BoundedZip, dict[str, Any]]:
    """The bundle's zip (under :data:`BUNDLE_LIMITS`) and its manifest, once both have the
    structure and types of an export bundle; MalformedInputError otherwise."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise MalformedInputError(f"bundle is {len(data)} bytes, more than {MAX_BUNDLE_BYTES}")
    bundle = BoundedZip(data, what="bundle", limits=BUNDLE_LIMITS)
    if "manifest.json" not in bundle.names():
        raise MalformedInputError("bundle has no manifest.json: not a sealtrail export bundle")
    manifest = load_json(bundle.read("manifest.json", max_bytes=MAX_MANIFEST_BYTES),
                         what="bundle manifest.json", max_bytes=MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise MalformedInputError(f"bundle manifest.json is not a {BUNDLE_FORMAT} manifest")
    check_shape(manifest, MANIFEST_SHAPE, "bundle manifest.json")
    for name, digest in manifest["files"].items():
        if not isinstance(digest, str):
            raise MalformedInputError(f"bundle manifest.json: files[{name[:200]!r}] must be "
                                      "a hex string")
    return bundle, manifest


def verify_export(data: bytes, keyring: Keyring) -> VerifyExportResult:
    """Check a bundle offline against ``keyring`` (the recipient's, not the bundle's).
    MalformedInputError when ``data`` is not an export bundle (:func:`open_bundle`)."""
    problems: list[str] = []
    bundle, manifest = open_bundle(data)
    names = bundle.names()
    listed: dict[str, str] = manifest["files"]
    for name, digest in sorted(listed.items()):
        if name not in names:
            problems.append(f"{name}: listed in the manifest but absent")
        elif bundle.sha256(name) != digest:
            problems.append(f"{name}: SHA-256 differs from the manifest")
    for name in sorted(names - set(listed) - {"README.txt", "manifest.json"}):
        problems.append(f"{name}: not listed in the manifest")
    proofs = sorted(n for n in names if n.startswith("proofs/"))
    count = 0
    entries: list[dict[str, Any] | None] = []
    for name in proofs:
        try:
            data_ = bundle.read(name, max_bytes=MAX_PROOF_BYTES)
            verify_proof(data_, keyring)
            count += 1
            entries.append(json.loads(data_)["entry"])
        except DataError as exc:  # IntegrityError, or a member that is not a proof at all
            problems.append(f"{name}: {exc}")
            entries.append(None)
    if not proofs:
        problems.append("the bundle holds no proof: it proves nothing")
    if manifest.get("count") != len(proofs):
        problems.append(f"the manifest states {manifest.get('count')} events, the bundle holds "
                        f"{len(proofs)} proofs")
    checked = False
    if "events.jsonl" in names and None not in entries:
        events = bundle.read("events.jsonl", max_bytes=BUNDLE_LIMITS.member_bytes)
        problems.extend(_events_problems(events, proofs,
                                         [e for e in entries if e is not None]))
        checked = True
    return VerifyExportResult(count, manifest, problems, checked)


def _events_problems(found: bytes, proofs: list[str], entries: list[dict[str, Any]]
                     ) -> list[str]:
    """events.jsonl against the proven entries, byte for byte, naming the first line that
    differs (a line no proof covers is not evidence, whatever it says)."""
    if found == events_jsonl(entries):
        return []
    lines = found.split(b"\n")
    for i, entry in enumerate(entries):
        if i >= len(lines) or lines[i] != canonical_json(entry):
            return [f"events.jsonl: line {i + 1} is not the entry {proofs[i]} proves "
                    "(events.jsonl must hold exactly the proven entries)"]
    return [f"events.jsonl: holds more than the {len(entries)} proven entries (line "
            f"{len(entries) + 1} on is not proven)"]
