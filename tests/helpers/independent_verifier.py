"""An independent verifier of sealtrail archives, written from docs/format.md alone.

It imports nothing from sealtrail: only the standard library, fastavro (to read Avro
object container files) and cryptography (for Ed25519). Its purpose is to show that the
format specification is complete: if this verifier and ``sealtrail verify`` agree on
archives built by sealtrail, the document says enough to verify them.

``verify_dir(archive_dir, keyring_path)`` returns a list of problems, empty when the
archive is intact. Sections cited as "spec: ..." are headings of docs/format.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "canonical_json",
    "entry_hash",
    "genesis_hash",
    "json_string",
    "load_keyring",
    "merkle_root",
    "verify_dir",
]

# spec: "Hash domains"
ENTRY = b"sealtrail:entry:v1\x00"
GENESIS = b"sealtrail:genesis:v1\x00"
CHECKPOINT = b"sealtrail:checkpoint:v1\x00"
CHECKPOINT_V2 = b"sealtrail:checkpoint:v2\x00"
SIG_ENTRY = b"sealtrail:sig:entry:v1\x00"
SIG_BATCH = b"sealtrail:sig:batch:v1\x00"
SIG_CHECKPOINT = b"sealtrail:sig:checkpoint:v1\x00"
INDEX = b"sealtrail:index:v1\x00"
SIG_INDEX = b"sealtrail:sig:index:v1\x00"
ZERO = bytes(32)

# spec: "Sealed record" (the entry body)
COVERED = ("chain_id", "seq", "epoch", "kind", "event", "rejection", "redaction",
           "ingested_at", "source", "prev_hash", "key_id")
# spec: "Checkpoints"
STATEMENT_INTS = ("index", "first_seq", "last_seq", "segment_size", "created_at")
STATEMENT_STRS = ("chain_id", "segment_key", "key_id")
STATEMENT_HASHES = ("head_hash", "merkle_root", "prev_checkpoint_hash", "segment_sha256")
# spec: "Checkpoints, version 2"
STATEMENT_V2 = ("retention_mode", "retention_class", "retain_until", "tree_size", "tree_root",
                "tree_frontier")
# spec: "Signatures" (record format 2: batch seals)
BATCH_TAG = 0x01
BATCH_POSITIONS = struct.Struct(">QQq")  # first seq, last seq, sealed_at
CHECKPOINT_FORMATS = {"sealtrail-checkpoint/v1": 1, "sealtrail-checkpoint/v2": 2}
KEYRING_FORMAT = "sealtrail-keyring/v1"
# spec: "Archive layout"
INDEX_NAME = re.compile(r"^(\d{10})\.(avro|json)$")
TMP_PREFIX = ".sealtrail-tmp-"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# -- canonical JSON (spec: "Canonical JSON") ----------------------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
          "\r": "\\r"}


def json_string(text: str) -> str:
    """A string as canonical JSON writes it (before UTF-8 encoding)."""
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif cp < 0x20:
            out.append(f"\\u{cp:04x}")
        elif 0xD800 <= cp <= 0xDFFF:
            raise ValueError(f"lone surrogate U+{cp:04X} has no canonical form")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json_string(value))
    elif isinstance(value, bytes | bytearray):
        out.append(json_string(bytes(value).hex()))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        # Python compares str by code point, which is what the spec requires.
        for i, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            if i:
                out.append(",")
            out.append(json_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:  # floats and anything else
        raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


# -- hashes (spec: "Entry hash, genesis hash and signature", "Merkle tree") ----------------

def genesis_hash(chain_id: str) -> bytes:
    return sha256(GENESIS + chain_id.encode("utf-8"))


def entry_hash(record: dict[str, Any]) -> bytes:
    return sha256(ENTRY + canonical_json({name: record[name] for name in COVERED}))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH, written recursively as the spec states it."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:]))


def compact_range(leaves: Sequence[bytes]) -> list[bytes]:
    """spec: "Checkpoints, version 2": for each 1 bit of the size, from the highest, the
    MTH of the next 2^bit leaves."""
    nodes, start, n = [], 0, len(leaves)
    for bit in reversed(range(n.bit_length())):
        if n >> bit & 1:
            nodes.append(merkle_root(leaves[start:start + (1 << bit)]))
            start += 1 << bit
    return nodes


# -- keyring (spec: "Public keyring") -------------------------------------------------------

class Key:
    def __init__(self, public_key: bytes, not_before: int, not_after: int | None) -> None:
        self.public_key = public_key
        self.not_before = not_before
        self.not_after = not_after

    def valid_at(self, t: int) -> bool:
        return self.not_before <= t and (self.not_after is None or t <= self.not_after)


def _strict_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_keyring(path: str | Path) -> dict[str, Key]:
    """Parse a keyring file; ValueError saying what is wrong."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT:
        raise ValueError(f"keyring format is not {KEYRING_FORMAT}")
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise ValueError("keyring holds no keys")
    keys: dict[str, Key] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"keyring entry {i} is not an object")
        if entry.get("algorithm") != "ed25519":
            raise ValueError(f"keyring entry {i}: algorithm is not ed25519")
        key_id = entry.get("key_id")
        if not isinstance(key_id, str) or key_id in keys:
            raise ValueError(f"keyring entry {i}: key_id missing or duplicated")
        try:
            public_key = base64.b64decode(entry.get("public_key", ""), validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ValueError(f"keyring entry {i}: public_key is not base64") from None
        if len(public_key) != 32:
            raise ValueError(f"keyring entry {i}: public key is not 32 bytes")
        not_before = entry.get("not_before")
        not_before = 0 if not_before is None else not_before
        not_after = entry.get("not_after")
        if not _strict_int(not_before) or not (not_after is None or _strict_int(not_after)):
            raise ValueError(f"keyring entry {i}: validity bounds must be integers")
        if not_after is not None and not_after < not_before:
            raise ValueError(f"keyring entry {i}: not_after is before not_before")
        keys[key_id] = Key(public_key, not_before, not_after)
    return keys


def check_signature(
    keys: dict[str, Key], key_id: str, message: bytes, signature: bytes, at: int
) -> tuple[str, str] | None:
    """(kind, message) when the signature does not hold, None when it does."""
    key = keys.get(key_id)
    if key is None:
        return "unknown-key", f"key {key_id!r} is not in the trusted keyring"
    if not key.valid_at(at):
        return "signature", f"key {key_id!r} is not valid at {at}"
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(bytes(signature), message)
    except (InvalidSignature, ValueError):
        return "signature", f"signature by {key_id!r} does not verify"
    return None


class Batch:
    """The chain's open batch: the seq after its last signed entry (0 at the chain start)
    and the entry hashes of the unsigned entries since."""

    def __init__(self) -> None:
        self.first = 0
        self.hashes: list[bytes] = []


def check_seal(keys: dict[str, Key], r: dict[str, Any], digest: bytes, batch: Batch
               ) -> tuple[str, str] | None:
    """spec: "Signatures": (kind, message) when entry ``r`` (hash ``digest``) breaks the
    signature rule, None when it holds or ``r`` is unsigned (it waits for its batch seal).
    ``batch`` is moved on past ``r``."""
    sig, seq, at = r["signature"], r["seq"], r["ingested_at"]
    if len(sig) == 0:
        batch.hashes.append(digest)
        return None
    if len(sig) == 64:
        if batch.hashes:
            return "signature", (f"seq {batch.first}..{seq - 1} are unsigned and seq {seq} "
                                 "carries an entry signature, not a batch seal")
        batch.first = seq + 1
        return check_signature(keys, r["key_id"], SIG_ENTRY + digest, sig, at)
    if len(sig) == 65 and sig[0] == BATCH_TAG:
        first, root = batch.first, merkle_root([*batch.hashes, digest])
        batch.first, batch.hashes = seq + 1, []
        statement = SIG_BATCH + BATCH_POSITIONS.pack(first, seq, at) + root + digest
        bad = check_signature(keys, r["key_id"], statement, sig[1:], at)
        return None if bad is None else (bad[0], f"{bad[1]} (batch seal of seq {first}..{seq})")
    return "signature", f"a signature of {len(sig)} bytes is none of the forms of the spec"


# -- segments (spec: "Segment files") ---------------------------------------------------------

def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def read_segment(path: Path) -> list[dict[str, Any]]:
    """The records of a container file, decoded with its own header schema, logical types
    ignored (so timestamps stay integers)."""
    with path.open("rb") as f:
        writer_schema = json.loads(fastavro.reader(f).metadata["avro.schema"])
    plain = _without_logical_types(writer_schema)
    with path.open("rb") as f:
        return list(fastavro.reader(f, reader_schema=plain))  # type: ignore[arg-type]


# -- verification (spec: "Verification algorithm") ----------------------------------------

class _Stop(Exception):
    pass


def _parse_checkpoint(data: bytes) -> tuple[dict[str, Any], bytes, bytes, list[str], int]:
    """(statement, stored hash, signature, notes, version) or ValueError."""
    doc = json.loads(data.decode("utf-8"))
    version = CHECKPOINT_FORMATS.get(doc.get("format")) if isinstance(doc, dict) else None
    if version is None:
        raise ValueError(f"format is not one of {sorted(CHECKPOINT_FORMATS)}")
    if set(doc) != {"format", "checkpoint", "checkpoint_hash", "signature"}:
        raise ValueError(f"unexpected members {sorted(doc)}")
    st = doc["checkpoint"]
    expected = set(STATEMENT_INTS) | set(STATEMENT_STRS) | set(STATEMENT_HASHES)
    if version == 2:
        expected |= set(STATEMENT_V2)
    if not isinstance(st, dict) or set(st) != expected:
        raise ValueError(f"statement does not have exactly the fields of version {version}")
    if version == 2:
        if st["retention_mode"] not in ("COMPLIANCE", "GOVERNANCE") or \
                not isinstance(st["retention_class"], str) or not st["retention_class"]:
            raise ValueError("retention_mode or retention_class is not valid")
        for name in ("retain_until", "tree_size"):
            if not _strict_int(st[name]) or st[name] < 0:
                raise ValueError(f"{name} is not a non-negative integer")
        frontier = st["tree_frontier"]
        if not isinstance(st["tree_root"], str) or not HEX64.match(st["tree_root"]) or \
                not isinstance(frontier, list) or \
                not all(isinstance(h, str) and HEX64.match(h) for h in frontier):
            raise ValueError("tree_root or tree_frontier is not lowercase hex hashes")
    for name in STATEMENT_INTS:
        if not _strict_int(st[name]):
            raise ValueError(f"{name} is not an integer")
    for name in STATEMENT_STRS:
        if not isinstance(st[name], str):
            raise ValueError(f"{name} is not a string")
    for name in STATEMENT_HASHES:
        if not isinstance(st[name], str) or not HEX64.match(st[name]):
            raise ValueError(f"{name} is not 64 lowercase hex characters")
    if not (st["index"] >= 0 and 0 <= st["first_seq"] <= st["last_seq"]):
        raise ValueError("impossible index or seq range")
    if not isinstance(doc["checkpoint_hash"], str) or not HEX64.match(doc["checkpoint_hash"]):
        raise ValueError("checkpoint_hash is not 64 lowercase hex characters")
    if not isinstance(doc["signature"], str) or not HEX128.match(doc["signature"]):
        raise ValueError("signature is not 128 lowercase hex characters")
    notes = []
    if canonical_json(doc) != data:
        notes.append("checkpoint file is not in canonical form")
    return (st, bytes.fromhex(doc["checkpoint_hash"]), bytes.fromhex(doc["signature"]), notes,
            version)


def _index_files(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(TMP_PREFIX))


# -- the archive index (spec: "Archive index", verification step 0) -----------------------

INDEX_STATEMENT = {"archive_id", "seq", "prev_index_hash", "created_at", "key_id",
                   "chains_size", "chains_root", "schemas_size", "schemas_root",
                   "log_frontier"}
CHAIN_ENTRY = {"chain_id", "checkpoint_index", "checkpoint_hash", "tree_size", "head_hash",
               "topic", "partition"}


def _parse_index(data: bytes, keys: dict[str, Key]) -> dict[str, Any]:
    """A valid index document, or ValueError saying why not."""
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != "sealtrail-index/v1" or set(doc) != {
            "format", "index", "chains", "schemas", "index_hash", "signature"}:
        raise ValueError("not a sealtrail-index/v1 document")
    st, chains, schemas = doc["index"], doc["chains"], doc["schemas"]
    if not isinstance(st, dict) or set(st) != INDEX_STATEMENT:
        raise ValueError("statement does not have exactly the fields of the format")
    if not all(isinstance(c, dict) and set(c) == CHAIN_ENTRY for c in chains) or \
            not all(isinstance(x, dict) and set(x) == {"key", "sha256"} for x in schemas):
        raise ValueError("chain or schema entries do not have the fields of the format")
    digest = sha256(INDEX + canonical_json(st))
    if digest.hex() != doc["index_hash"]:
        raise ValueError("index_hash does not match the statement")
    bad = check_signature(keys, st["key_id"], SIG_INDEX + digest,
                          bytes.fromhex(doc["signature"]), st["created_at"])
    if bad:
        raise ValueError(f"{bad[0]}: {bad[1]}")
    ids = [c["chain_id"] for c in chains]
    if ids != sorted(set(ids)):
        raise ValueError("chains are not sorted and unique")
    for name, items in (("chains", chains), ("schemas", schemas)):
        if st[f"{name}_size"] != len(items) or st[f"{name}_root"] != merkle_root(
                [canonical_json(i) for i in items]).hex():
            raise ValueError(f"{name} are not the ones the statement roots")
    if len(st["log_frontier"]) != bin(st["seq"]).count("1"):
        raise ValueError("log_frontier does not fit seq")
    if canonical_json(doc) != data:
        raise ValueError("index file is not in canonical form")
    return doc


def _read_index(root: Path, keys: dict[str, Key]) -> tuple[list[str], dict[str, Any] | None]:
    """(problems, newest valid index document or None) of the archive's index series."""
    names = _index_files(root / "index")
    problems: list[str] = []
    for n, name in enumerate(names):
        if name != f"{n:010d}.json":
            problems.append(f"archive: missing: index {n} is absent (found {name})")
            break
    if not names:
        return problems, None
    docs = []
    for name in names[-2:]:
        try:
            docs.append(_parse_index((root / "index" / name).read_bytes(), keys))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            problems.append(f"archive: malformed: index {name}: {exc}")
            return problems, None
    newest = docs[-1]
    if len(docs) == 2:  # spec: an append-only successor of the one before it
        older, new = docs[0], docs[1]
        if new["index"]["prev_index_hash"] != older["index_hash"] or \
                new["index"]["archive_id"] != older["index"]["archive_id"]:
            problems.append("archive: fork: the newest index does not link to the one before")
        now = {c["chain_id"]: c for c in new["chains"]}
        for c in older["chains"]:
            if c["chain_id"] not in now or now[c["chain_id"]]["checkpoint_index"] < \
                    c["checkpoint_index"]:
                problems.append(f"archive: fork: chain {c['chain_id']} goes back")
    for entry in newest["schemas"]:
        path = root.joinpath(*entry["key"].split("/"))
        if not path.is_file() or sha256(path.read_bytes()).hex() != entry["sha256"]:
            problems.append(f"archive: modified: schema file {entry['key']} is not the one "
                            "the index lists")
    return problems, newest


def _verify_chain(root: Path, chain_id: str, keys: dict[str, Key],
                  anchor: dict[str, Any] | None = None) -> list[str]:
    """The chain's problems; ``anchor``: the newest index's entry for it."""
    problems: list[str] = []
    chain_dir = root / "chains" / chain_id

    def stop(kind: str, message: str) -> _Stop:
        problems.append(f"chain {chain_id}: {kind}: {message}")
        return _Stop()

    head_seq, head_hash, head_epoch = -1, genesis_hash(chain_id), 0
    batch = Batch()
    prev_cp = ZERO
    version_seen = 1
    all_leaves: list[bytes] = []  # every entry hash of the chain so far (its Merkle tree)
    last_source: tuple[str, int, int] | None = None
    referenced: set[str] = set()
    checkpoints = _index_files(chain_dir / "checkpoints")
    try:
        if not checkpoints:
            raise stop("missing", "no checkpoint covers this chain")
        for p, name in enumerate(checkpoints):
            where = f"checkpoint {p}"
            if name != f"{p:010d}.json":
                raise stop("missing", f"{where} is absent (found {name})")
            data = (chain_dir / "checkpoints" / name).read_bytes()
            try:
                st, stored_hash, cp_sig, notes, version = _parse_checkpoint(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise stop("malformed", f"{where}: {exc}") from None
            cp_hash = sha256((CHECKPOINT if version == 1 else CHECKPOINT_V2) + canonical_json(st))
            if cp_hash != stored_hash:
                raise stop("signature", f"{where}: checkpoint_hash does not match statement")
            bad = check_signature(keys, st["key_id"], SIG_CHECKPOINT + cp_hash, cp_sig,
                                  st["created_at"])
            if bad:
                raise stop(bad[0], f"{where}: {bad[1]}")
            if notes:
                raise stop("malformed", f"{where}: {'; '.join(notes)}")
            if st["chain_id"] != chain_id or st["index"] != p:
                raise stop("reordered", f"{where} states chain {st['chain_id']!r} index "
                           f"{st['index']}")
            if bytes.fromhex(st["prev_checkpoint_hash"]) != prev_cp:
                raise stop("link", f"{where} does not link to the previous checkpoint")
            if st["first_seq"] != head_seq + 1:
                raise stop("seq", f"{where} starts at seq {st['first_seq']}, expected "
                           f"{head_seq + 1}")
            seg_key = f"chains/{chain_id}/segments/{p:010d}.avro"
            if st["segment_key"] != seg_key:
                raise stop("reordered", f"{where} names segment {st['segment_key']}")
            referenced.add(seg_key)
            seg_path = root.joinpath(*seg_key.split("/"))
            if not seg_path.is_file():
                raise stop("missing", f"segment {seg_key} is absent")
            seg = seg_path.read_bytes()
            if sha256(seg) != bytes.fromhex(st["segment_sha256"]) or \
                    len(seg) != st["segment_size"]:
                kind = "truncated" if len(seg) < st["segment_size"] else "modified"
                raise stop(kind, f"segment {seg_key} bytes differ from {where}")
            try:
                records = read_segment(seg_path)
            except Exception as exc:  # fastavro raises many kinds on corrupt input
                raise stop("malformed", f"segment {seg_key}: {type(exc).__name__}: {exc}") \
                    from None
            if len(records) != st["last_seq"] - st["first_seq"] + 1:
                raise stop("truncated", f"segment {seg_key} holds {len(records)} records, "
                           f"{where} covers {st['last_seq'] - st['first_seq'] + 1}")
            for r in records:
                at = f"segment {seg_key} seq {r['seq']}"
                if r["chain_id"] != chain_id:
                    raise stop("chain", f"{at} belongs to chain {r['chain_id']!r}")
                if r["seq"] != head_seq + 1:
                    raise stop("seq", f"{at}: expected seq {head_seq + 1}")
                if r["epoch"] < head_epoch:
                    raise stop("epoch", f"{at}: epoch {r['epoch']} after {head_epoch}")
                if r["prev_hash"] != head_hash:
                    raise stop("link", f"{at}: prev_hash does not match the previous entry")
                digest = entry_hash(r)
                if digest != r["entry_hash"]:
                    raise stop("hash", f"{at}: entry_hash does not match its content")
                bad = check_seal(keys, r, digest, batch)
                if bad:
                    raise stop(bad[0], f"{at}: {bad[1]}")
                src = r["source"]
                if last_source is not None:
                    topic, partition, offset = last_source
                    if src["offset"] != offset + 1:
                        raise stop("completeness", f"{at}: raw offset {src['offset']} follows "
                                   f"{offset}")
                    if (src["topic"], src["partition"]) != (topic, partition):
                        raise stop("completeness", f"{at}: source moved from {topic}/"
                                   f"{partition} to {src['topic']}/{src['partition']}")
                if (r["kind"] == "EVENT") != (r["event"] is not None and r["rejection"] is None) \
                        or (r["kind"] == "REJECTION") != (r["rejection"] is not None
                                                          and r["event"] is None):
                    raise stop("malformed", f"{at}: kind {r['kind']} does not match its payload")
                last_source = (src["topic"], src["partition"], src["offset"])
                head_seq, head_hash, head_epoch = r["seq"], r["entry_hash"], r["epoch"]
            if batch.hashes:  # spec: a segment ends with a signed entry
                raise stop("signature", f"segment {seg_key} seq {batch.first}: seq "
                           f"{batch.first}..{head_seq} are unsigned and no batch seal after "
                           "them covers them")
            if merkle_root([r["entry_hash"] for r in records]) != \
                    bytes.fromhex(st["merkle_root"]):
                raise stop("modified", f"Merkle root of {seg_key} differs from {where}")
            if head_hash != bytes.fromhex(st["head_hash"]) or head_seq != st["last_seq"]:
                raise stop("modified", f"chain head differs from {where}")
            all_leaves.extend(r["entry_hash"] for r in records)
            if version < version_seen:
                raise stop("modified", f"{where} is version {version} after {version_seen}")
            if anchor is not None and anchor["checkpoint_index"] == p and \
                    anchor["checkpoint_hash"] != cp_hash.hex():
                raise stop("fork", f"{where} is not the one the newest index lists")
            version_seen = version
            if version == 2 and (
                    st["tree_size"] != len(all_leaves)
                    or bytes.fromhex(st["tree_root"]) != merkle_root(all_leaves)
                    or [bytes.fromhex(h) for h in st["tree_frontier"]]
                    != compact_range(all_leaves)):
                raise stop("modified", f"{where} states a chain tree that is not the tree of "
                           "the entries so far")
            prev_cp = cp_hash
    except _Stop:
        return problems
    if anchor is not None and anchor["checkpoint_index"] >= len(checkpoints):
        return [f"chain {chain_id}: rollback: the newest index lists checkpoint "
                f"{anchor['checkpoint_index']}, the chain ends at {len(checkpoints) - 1}"]
    for name in _index_files(chain_dir / "segments"):
        key = f"chains/{chain_id}/segments/{name}"
        if key not in referenced:
            problems.append(f"chain {chain_id}: unreferenced: segment {key} is covered by no "
                            "checkpoint")
    return problems


def verify_dir(archive_dir: str | Path, keyring_path: str | Path) -> list[str]:
    """Verify the local-directory archive at ``archive_dir`` against the keyring file at
    ``keyring_path``. Returns the problems found; an empty list means intact."""
    root = Path(archive_dir)
    try:
        keys = load_keyring(keyring_path)
    except (OSError, ValueError) as exc:
        return [f"keyring: {exc}"]
    chains_dir = root / "chains"
    chain_ids = sorted(p.name for p in chains_dir.iterdir() if p.is_dir()) \
        if chains_dir.is_dir() else []
    if not chain_ids:
        return [f"archive {root} holds no chains"]
    problems, newest = _read_index(root, keys)
    listed = {c["chain_id"]: c for c in newest["chains"]} if newest else {}
    for chain_id in chain_ids:
        problems.extend(_verify_chain(root, chain_id, keys, listed.get(chain_id)))
        first = chains_dir / chain_id / "checkpoints" / f"{0:010d}.json"
        if newest is not None and chain_id not in listed and first.is_file():
            try:  # spec: verification step 4
                created = json.loads(first.read_bytes())["checkpoint"]["created_at"]
            except (ValueError, KeyError, TypeError):
                continue
            if created <= newest["index"]["created_at"]:
                problems.append(f"chain {chain_id}: unindexed: older than the newest index "
                                "but not in it")
    for chain_id in sorted(set(listed) - set(chain_ids)):
        problems.append(f"chain {chain_id}: missing: the newest index lists it")
    return problems
