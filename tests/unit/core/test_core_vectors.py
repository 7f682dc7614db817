"""Golden vectors: external conformance data (RFC 6962/9162 Merkle, RFC 8032 Ed25519) and
sealtrail's own checked-in format vectors (tests/vectors/entry_v1.json).

The conformance files are read from ../shared/conformance (or $SEALTRAIL_CONFORMANCE_DIR) and
never copied into the repository; their tests skip when the folder is absent. Consistency
proofs are not implemented in sealtrail.core.merkle, so those sections are not exercised.

To regenerate entry_v1.json after a deliberate format change:
    SEALTRAIL_REGEN_VECTORS=1 .venv/bin/pytest tests/unit/core/test_core_vectors.py
(then review the diff: every changed byte is a format change that docs/format.md must state).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from helpers.paths import TESTS, conformance_missing, load_conformance, need_conformance

from sealtrail import schemas
from sealtrail.core import hashing, merkle
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import canonical_json, entry_body
from sealtrail.core.chain import ChainHead, check_entry, genesis_hash, seal
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.redaction import Policy
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.errors import IntegrityError

# -- external conformance data -------------------------------------------------------


MERKLE = load_conformance("merkle_vectors.json")
ED25519 = load_conformance("ed25519_vectors.json")


def _params(doc: dict[str, Any] | None, name: str, *keys: str) -> list[Any]:
    """The cases at doc[keys...], or one skipped case saying the file is missing."""
    if doc is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=conformance_missing(name)),
                             id="missing")]
    cases: Any = doc
    for key in keys:
        cases = cases[key]
    return [pytest.param(c, id=f"{i}-{c.get('desc') or c.get('name') or ''}"[:60])
            for i, c in enumerate(cases)]


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.mark.parametrize("case", _params(MERKLE, "merkle_vectors.json", "hasher_vectors"))
def test_merkle_hasher_vectors(case: dict[str, Any]) -> None:
    """Empty-tree root, leaf hashes and node hashes equal the RFC 6962 reference values."""
    expected = bytes.fromhex(case["expected_hex"])
    if case["kind"] == "empty_root":
        assert merkle.root([]) == expected
    elif case["kind"] == "leaf":
        assert merkle.leaf_hash(bytes.fromhex(case["input_hex"])) == expected
    else:
        assert case["kind"] == "node"
        left, right = bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"])
        assert merkle.node_hash(left, right) == expected


def test_merkle_reference_tree() -> None:
    """Leaf hashes, every complete-subtree node hash, and the roots of sizes 0..8 of the
    reference tree match."""
    tree = need_conformance("merkle_vectors.json")["reference_tree"]
    leaves = _hexes(tree["leaf_inputs_hex"])
    assert [merkle.leaf_hash(x) for x in leaves] == _hexes(tree["leaf_hashes_hex"])
    roots = tree["root_hashes_by_tree_size_hex"]
    assert sorted(int(size) for size in roots) == list(range(9))
    for size, root_hex in roots.items():
        assert merkle.root(leaves[: int(size)]) == bytes.fromhex(root_hex), size
    for level, nodes in enumerate(tree["node_hashes_by_level_hex"]["levels"]):
        width = 1 << level
        for i, node_hex in enumerate(nodes):
            assert merkle.root(leaves[i * width : (i + 1) * width]) == bytes.fromhex(node_hex)


def _reference_leaves() -> list[bytes]:
    return _hexes(need_conformance("merkle_vectors.json")["reference_tree"]["leaf_inputs_hex"])


@pytest.mark.parametrize(
    "case",
    _params(MERKLE, "merkle_vectors.json", "inclusion_proofs")
    + _params(MERKLE, "merkle_vectors.json", "derived_all_proofs_for_reference_tree",
              "inclusion"),
)
def test_merkle_inclusion_proofs(case: dict[str, Any]) -> None:
    """inclusion_proof reproduces each published (and derived) audit path byte for byte, and
    the path verifies to the published root."""
    leaves = _reference_leaves()[: case["tree_size"]]
    index = case["leaf_index"]
    proof = _hexes(case["proof_hex"])
    leaf_hash = bytes.fromhex(case["leaf_hash_hex"])
    assert merkle.leaf_hash(leaves[index]) == leaf_hash
    assert merkle.inclusion_proof(leaves, index) == proof
    assert merkle.root(leaves) == bytes.fromhex(case["root_hex"])
    assert merkle.root_from_inclusion_proof(index, len(leaves), leaf_hash, proof) == (
        bytes.fromhex(case["root_hex"])
    )


@pytest.mark.parametrize("case", _params(MERKLE, "merkle_vectors.json", "inclusion_probes"))
def test_merkle_inclusion_probes(case: dict[str, Any]) -> None:
    """Valid probes verify to the expected root; every corrupted probe either raises
    IntegrityError or yields a different root."""
    expected_root = bytes.fromhex(case["root_hex"])
    try:
        computed = merkle.root_from_inclusion_proof(
            case["leaf_index"], case["tree_size"], bytes.fromhex(case["leaf_hash_hex"]),
            _hexes(case["proof_hex"]),
        )
    except IntegrityError:
        assert case["want_error"], "a valid probe was refused"
        return
    if case["want_error"]:
        assert computed != expected_root
    else:
        assert computed == expected_root


def test_merkle_probe_counts() -> None:
    """The probe set has the documented shape (so an emptied file cannot pass silently)."""
    doc = need_conformance("merkle_vectors.json")
    probes = doc["inclusion_probes"]
    assert len(probes) == 98
    assert sum(not p["want_error"] for p in probes) == 6


@pytest.mark.parametrize("case", _params(ED25519, "ed25519_vectors.json", "vectors"))
def test_ed25519_rfc8032_vectors(case: dict[str, Any]) -> None:
    """Ed25519Signer(seed) derives the RFC 8032 public key and reproduces the signature, and
    a keyring holding that key accepts it."""
    seed = bytes.fromhex(case["secret_key_hex"])
    public_key = bytes.fromhex(case["public_key_hex"])
    message = bytes.fromhex(case["message_hex"])
    signature = bytes.fromhex(case["signature_hex"])
    signer = Ed25519Signer(seed)
    assert signer.public_key == public_key
    assert signer.sign(message) == signature
    keyring = Keyring.of([PublicKey(signer.key_id, public_key)])
    assert keyring.verify(signer.key_id, message, signature, at_us=0) is None


@pytest.mark.parametrize(
    "case", _params(ED25519, "ed25519_vectors.json", "derived_negative_cases", "cases")
)
def test_ed25519_negative_cases(case: dict[str, Any]) -> None:
    """Every altered message, R, S or swapped key is refused by Keyring.verify."""
    assert case["valid"] is False
    public_key = bytes.fromhex(case["public_key_hex"])
    keyring = Keyring.of([PublicKey("k", public_key)])
    problem = keyring.verify("k", bytes.fromhex(case["message_hex"]),
                             bytes.fromhex(case["signature_hex"]), at_us=0)
    assert problem == "signature by 'k' is invalid"


# -- sealtrail's own golden vectors --------------------------------------------------

VECTORS_FILE = TESTS / "vectors" / "entry_v1.json"
GOLDEN_SEED = bytes.fromhex("5ea17a11" * 8)
GOLDEN_HMAC_KEY = b"sealtrail golden hmac key 32 byt"
GOLDEN_CHAIN = "audit.raw.0.0123456789abcdef"
T0 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z in microseconds
BYTES_PATHS = (("prev_hash",), ("entry_hash",), ("signature",), ("rejection", "raw_sha256"))
SEALED_V1 = AvroCodec(schemas.sealed_record(event_version=1, version=1))


def _golden_event(event_id: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id, "event_type": "auth.login", "action": "login",
        "occurred_at": T0 - 250,
        "actor": {"id": "user-42", "type": "user", "principal": "alice@example.com"},
        "origin": {"service": "billing-api", "instance": "billing-api-7f9c", "service_version":
                   "2.4.1", "environment": "prod", "source_ip": "203.0.113.7",
                   "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "request_id": "req-1",
                   "trace_id": None},
        "resource": {"type": "session", "id": "sess-9"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": "acme", "classification": "CONFIDENTIAL",
        "attributes": {"email": "alice@example.com", "mfa": "totp", "Zone": "eu-1"},
    }
    event.update(overrides)
    return event


def _unsealed(offset: int, ingested_at: int) -> dict[str, Any]:
    return {
        "kind": "EVENT", "event": None, "rejection": None,
        "redaction": {"policy_id": "golden", "policy_version": 3, "fields": []},
        "ingested_at": ingested_at,
        "source": {"topic": "audit.raw", "partition": 0, "offset": offset, "schema_id": 1},
    }


def _hexified(record: dict[str, Any]) -> dict[str, Any]:
    """The record in SealedRecord field order, byte strings as hex."""
    names = [f["name"] for f in schemas.load("SealedRecord", 1)["fields"]]
    assert sorted(names) == sorted(record)
    out = {name: copy.deepcopy(record[name]) for name in names}
    for path in BYTES_PATHS:
        parent = out
        for part in path[:-1]:
            parent = parent.get(part) or {}
        if path[-1] in parent:
            parent[path[-1]] = parent[path[-1]].hex()
    return out


def _unhexified(record: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    for path in BYTES_PATHS:
        parent = out
        for part in path[:-1]:
            parent = parent.get(part) or {}
        if path[-1] in parent:
            parent[path[-1]] = bytes.fromhex(parent[path[-1]])
    return out


def build_golden_vectors() -> dict[str, Any]:
    """Everything entry_v1.json holds, computed from fixed inputs with sealtrail's core."""
    signer = Ed25519Signer(GOLDEN_SEED)
    policy = Policy.from_document(
        {"id": "golden", "version": 3, "rules": [
            {"path": "attributes.email", "action": "pseudonymize"},
            {"path": "actor.principal", "action": "pseudonymize"},
            {"path": "origin.source_ip", "action": "mask", "keep_first": 7},
            {"path": "origin.user_agent", "action": "truncate", "max_length": 11},
        ]},
        event_schema=schemas.load("AuditEvent", 1), hmac_key=GOLDEN_HMAC_KEY, hmac_key_id="h1",
    )
    head = ChainHead.genesis(GOLDEN_CHAIN)
    sealed = []

    # seq 0: an ordinary event, redacted by the policy above.
    first = _unsealed(offset=100, ingested_at=T0)
    event = _golden_event("0b0e4bd2-6d0e-4a4c-9a55-000000000001")
    first["redaction"]["fields"] = policy.apply(event)
    first["event"] = event
    sealed.append(seal(head, first, signer))
    head = head.advance(sealed[-1])

    # seq 1: a rejection (undecodable bytes), so `event` is null and raw bytes are hashed.
    raw = b"\x00\x00\x00\x00\x07not avro"
    second = _unsealed(offset=101, ingested_at=T0 + 1)
    second.update(kind="REJECTION", rejection={
        "reason": "UNDECODABLE", "detail": "Avro body does not decode: EOFError",
        "raw_sha256": hashlib.sha256(raw).digest(), "raw_size": len(raw)})
    second["source"]["schema_id"] = None
    sealed.append(seal(head, second, signer))
    head = head.advance(sealed[-1])

    # seq 2: a new owner (epoch 1); strings exercising every escape rule of the format.
    third = _unsealed(offset=102, ingested_at=T0 + 2_000_000)
    event = _golden_event(
        "0b0e4bd2-6d0e-4a4c-9a55-000000000003", event_type="record.update", action="update",
        outcome="DENIED", reason='quote " backslash \\ slash / nl \n tab \t nul \x00 us \x1f',
        authorization={"decision": "DENY", "policy": "rbac/v2",
                       "permissions": ["records:write", "records:read"]},
        resource={"type": "record", "id": "Zürich-日本-\U0001f512-\u2028-\x7f"},
        attributes={"b": "2", "a": "1", "ä": "3", "B": "4", "\U0001f600": "5", "\uffff": "6"},
    )
    third["redaction"]["fields"] = policy.apply(event)
    third["event"] = event
    head = ChainHead(head.chain_id, head.seq, head.entry_hash, 1)
    sealed.append(seal(head, third, signer))
    head = head.advance(sealed[-1])

    segment = b"".join(SEALED_V1.encode(r) for r in sealed)
    checkpoint = Checkpoint(
        chain_id=GOLDEN_CHAIN, index=0, first_seq=0, last_seq=head.seq,
        head_hash=head.entry_hash, merkle_root=merkle.root([r["entry_hash"] for r in sealed]),
        prev_checkpoint_hash=hashing.ZERO_HASH,
        segment_key=f"chains/{GOLDEN_CHAIN}/segments/000000.avro",
        segment_sha256=hashlib.sha256(segment).digest(), segment_size=len(segment),
        created_at=T0 + 5_000_000, key_id=signer.key_id,
    )
    signed = checkpoint.sign(signer)
    return {
        "format": "sealtrail-golden-vectors/v1",
        "description": (
            "Fully specified sealed records and a checkpoint, pinned byte for byte. "
            "All byte strings are lowercase hex. canonical_json is the exact UTF-8 text that "
            "is hashed: entry_hash = SHA-256(domains.entry || canonical_json); the entry "
            "signature is Ed25519 over domains.sig_entry || entry_hash. checkpoint_hash = "
            "SHA-256(domains.checkpoint || canonical_json of the statement); its signature is "
            "Ed25519 over domains.sig_checkpoint || checkpoint_hash. avro_hex is the "
            "SealedRecord v1 Avro body (AuditEvent v1 inlined, no wire header): transport "
            "only, not hashed. segment_sha256 is over the concatenated avro bodies, a "
            "stand-in for a real segment file. Generated by tests/test_core_vectors.py."
        ),
        "domains": {
            "entry": hashing.ENTRY_DOMAIN.hex(),
            "genesis": hashing.GENESIS_DOMAIN.hex(),
            "checkpoint": hashing.CHECKPOINT_DOMAIN.hex(),
            "sig_entry": hashing.SIG_ENTRY_DOMAIN.hex(),
            "sig_checkpoint": hashing.SIG_CHECKPOINT_DOMAIN.hex(),
            "merkle_leaf_prefix": hashing.MERKLE_LEAF_PREFIX.hex(),
            "merkle_node_prefix": hashing.MERKLE_NODE_PREFIX.hex(),
        },
        "signer": {"seed_hex": GOLDEN_SEED.hex(), "public_key_hex": signer.public_key.hex(),
                   "key_id": signer.key_id},
        "hmac": {"key_hex": GOLDEN_HMAC_KEY.hex(), "key_id": "h1"},
        "chain_id": GOLDEN_CHAIN,
        "genesis_hash_hex": genesis_hash(GOLDEN_CHAIN).hex(),
        "entries": [
            {
                "record": _hexified(r),
                "canonical_json": canonical_json(entry_body(r)).decode("utf-8"),
                "entry_hash_hex": r["entry_hash"].hex(),
                "signature_hex": r["signature"].hex(),
                "avro_hex": SEALED_V1.encode(r).hex(),
            }
            for r in sealed
        ],
        "checkpoint": {
            "statement": checkpoint.to_json(),
            "canonical_json": canonical_json(checkpoint.to_json()).decode("utf-8"),
            "checkpoint_hash_hex": signed.checkpoint_hash.hex(),
            "signature_hex": signed.signature.hex(),
            "archived": signed.to_bytes().decode("utf-8"),
        },
    }


def _write_vectors(vectors: dict[str, Any]) -> None:
    VECTORS_FILE.parent.mkdir(parents=True, exist_ok=True)
    # ASCII-only file (non-ASCII as \u escapes), so no editor or tool can alter it.
    text = json.dumps(vectors, indent=2, ensure_ascii=True) + "\n"
    VECTORS_FILE.write_text(text, encoding="utf-8")


def _golden() -> dict[str, Any]:
    if os.environ.get("SEALTRAIL_REGEN_VECTORS") == "1":
        _write_vectors(build_golden_vectors())
    doc: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return doc


def test_golden_vectors_reproduce() -> None:
    """Recomputing every record, hash, signature and checkpoint from the fixed inputs gives
    exactly the checked-in entry_v1.json (the format has not drifted)."""
    assert build_golden_vectors() == _golden()


def test_golden_domains_are_pinned() -> None:
    """The hash domains in the file are the literal byte strings of the format."""
    domains = {k: bytes.fromhex(v) for k, v in _golden()["domains"].items()}
    assert domains == {
        "entry": b"sealtrail:entry:v1\x00", "genesis": b"sealtrail:genesis:v1\x00",
        "checkpoint": b"sealtrail:checkpoint:v1\x00", "sig_entry": b"sealtrail:sig:entry:v1\x00",
        "sig_checkpoint": b"sealtrail:sig:checkpoint:v1\x00",
        "merkle_leaf_prefix": b"\x00", "merkle_node_prefix": b"\x01",
    }


def test_golden_entries_check_independently() -> None:
    """From the file alone: each canonical text hashes to entry_hash, is the record minus its
    seal with sorted keys, links to its predecessor, and carries a valid Ed25519 signature."""
    doc = _golden()
    domains = {k: bytes.fromhex(v) for k, v in doc["domains"].items()}
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["signer"]["public_key_hex"]))
    assert hashlib.sha256(domains["genesis"] + doc["chain_id"].encode()).hexdigest() == (
        doc["genesis_hash_hex"]
    )
    prev = doc["genesis_hash_hex"]
    assert [e["record"]["seq"] for e in doc["entries"]] == [0, 1, 2]
    for entry in doc["entries"]:
        record = entry["record"]
        text = entry["canonical_json"]
        digest = hashlib.sha256(domains["entry"] + text.encode("utf-8")).digest()
        assert digest.hex() == entry["entry_hash_hex"] == record["entry_hash"]
        body = {k: v for k, v in record.items() if k not in ("entry_hash", "signature")}
        assert json.loads(text) == body
        assert text == json.dumps(body, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
        assert record["prev_hash"] == prev
        signature = bytes.fromhex(entry["signature_hex"])
        assert signature.hex() == record["signature"]
        public.verify(signature, domains["sig_entry"] + digest)
        with pytest.raises(InvalidSignature):
            public.verify(signature, digest)
        prev = entry["entry_hash_hex"]


def test_golden_entries_pin_escaping_and_redaction() -> None:
    """The vectors exercise escapes, non-ASCII, key order, a rejection, an epoch change and
    every redaction action, so the file pins each of those rules."""
    entries = _golden()["entries"]
    third = entries[2]["canonical_json"]
    for fragment in ('\\"', "\\\\", "/", "\\n", "\\t", "\\u0000", "\\u001f", "\x7f", "ü",
                     "日本", "\U0001f512", "\u2028", '"B":"4","a":"1","b":"2","ä":"3"'):
        assert fragment in third, fragment
    assert third.index('"\uffff"') < third.index('"\U0001f600"')
    assert entries[1]["record"]["kind"] == "REJECTION" and entries[1]["record"]["event"] is None
    assert [e["record"]["epoch"] for e in entries] == [0, 0, 1]
    first = entries[0]["record"]
    assert first["redaction"]["fields"] == [
        "attributes.email=pseudonymize", "actor.principal=pseudonymize",
        "origin.source_ip=mask", "origin.user_agent=truncate",
    ]
    assert first["event"]["attributes"]["email"].startswith("hmac:h1:")
    assert first["event"]["origin"]["source_ip"] == "203.0.1****"
    assert first["event"]["origin"]["user_agent"] == "Mozilla/5.0"
    assert "alice@example.com" not in entries[0]["canonical_json"]


def test_golden_records_verify_with_sealtrail() -> None:
    """The records read back from the file pass check_entry under the file's keyring, their
    canonical JSON and Avro bytes match, and tampering with any one is caught."""
    doc = _golden()
    signer = doc["signer"]
    keyring = Keyring.of([PublicKey(signer["key_id"], bytes.fromhex(signer["public_key_hex"]))])
    head = ChainHead.genesis(doc["chain_id"])
    for entry in doc["entries"]:
        record = _unhexified(entry["record"])
        assert canonical_json(entry_body(record)).decode("utf-8") == entry["canonical_json"]
        assert SEALED_V1.decode(bytes.fromhex(entry["avro_hex"])) == record
        assert SEALED_V1.encode(record).hex() == entry["avro_hex"]
        assert check_entry(head, record, keyring) is None
        tampered = {**record, "ingested_at": record["ingested_at"] + 1}
        assert check_entry(head, tampered, keyring) is not None
        head = head.advance(record)


def test_golden_checkpoint() -> None:
    """The checkpoint's canonical text hashes to checkpoint_hash, its signature verifies, its
    Merkle root and head are those of the entries, and the archived bytes parse back."""
    doc = _golden()
    domains = {k: bytes.fromhex(v) for k, v in doc["domains"].items()}
    cp = doc["checkpoint"]
    text = cp["canonical_json"]
    assert json.loads(text) == cp["statement"]
    digest = hashlib.sha256(domains["checkpoint"] + text.encode("utf-8")).digest()
    assert digest.hex() == cp["checkpoint_hash_hex"]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["signer"]["public_key_hex"]))
    public.verify(bytes.fromhex(cp["signature_hex"]), domains["sig_checkpoint"] + digest)
    entry_hashes = [bytes.fromhex(e["entry_hash_hex"]) for e in doc["entries"]]
    assert cp["statement"]["merkle_root"] == merkle.root(entry_hashes).hex()
    assert cp["statement"]["head_hash"] == doc["entries"][-1]["entry_hash_hex"]
    assert cp["statement"]["prev_checkpoint_hash"] == "00" * 32
    segment = b"".join(bytes.fromhex(e["avro_hex"]) for e in doc["entries"])
    assert cp["statement"]["segment_sha256"] == hashlib.sha256(segment).hexdigest()
    signed = SignedCheckpoint.from_bytes(cp["archived"].encode("utf-8"))
    assert signed.checkpoint == Checkpoint.from_json(cp["statement"])
    assert signed.checkpoint_hash.hex() == cp["checkpoint_hash_hex"]
    keyring = Keyring.of([PublicKey(doc["signer"]["key_id"], public.public_bytes_raw())])
    assert signed.problem(keyring) is None
    for index, leaf in enumerate(entry_hashes):
        proof = merkle.inclusion_proof(entry_hashes, index)
        assert merkle.root_from_inclusion_proof(
            index, len(entry_hashes), merkle.leaf_hash(leaf), proof
        ).hex() == cp["statement"]["merkle_root"]


if __name__ == "__main__":
    _write_vectors(build_golden_vectors())
    print(f"wrote {VECTORS_FILE}")
