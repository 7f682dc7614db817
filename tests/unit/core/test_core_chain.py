"""Sealing entries into a hash chain and checking the chain entry by entry."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body
from sealtrail.core.chain import (
    ChainHead,
    EntryProblem,
    check_entry,
    entry_hash,
    genesis_hash,
    seal,
)
from sealtrail.core.findings import Kind
from sealtrail.core.hashing import ENTRY_DOMAIN, GENESIS_DOMAIN, SIG_ENTRY_DOMAIN, sha256
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey

SIGNER = Ed25519Signer(bytes(range(32)))
OTHER = Ed25519Signer(bytes(range(1, 33)))
KEYRING = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
CHAIN = "raw.0.0123456789abcdef"
SEALED_CODEC = AvroCodec(schemas.sealed_record(event_version=1))

# -- strategies ----------------------------------------------------------------------

text = st.text(max_size=12)
maybe_text = st.none() | text
events = st.fixed_dictionaries({
    "event_id": text,
    "event_type": st.sampled_from(["auth.login", "record.read", "admin.key.rotate"]),
    "action": text,
    "occurred_at": st.integers(0, 2**62),
    "actor": st.fixed_dictionaries(
        {"id": text, "type": st.sampled_from(["user", "service"]), "principal": maybe_text}
    ),
    "origin": st.fixed_dictionaries({
        "service": text, "instance": text, "service_version": maybe_text,
        "environment": maybe_text, "source_ip": maybe_text, "user_agent": maybe_text,
        "request_id": maybe_text, "trace_id": maybe_text,
    }),
    "resource": st.fixed_dictionaries({"type": text, "id": text}),
    "outcome": st.sampled_from(["SUCCESS", "FAILURE", "DENIED", "ERROR", "UNKNOWN"]),
    "reason": maybe_text,
    "authorization": st.none() | st.fixed_dictionaries({
        "decision": st.sampled_from(["ALLOW", "DENY", "NOT_EVALUATED"]),
        "policy": maybe_text,
        "permissions": st.lists(text, max_size=3),
    }),
    "tenant": maybe_text,
    "classification": st.sampled_from(["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"]),
    "attributes": st.dictionaries(text, text, max_size=3),
})
rejections = st.fixed_dictionaries({
    "reason": st.sampled_from(["UNDECODABLE", "UNKNOWN_SCHEMA", "INVALID", "OVERSIZE"]),
    "detail": text,
    "raw_sha256": st.binary(min_size=32, max_size=32),
    "raw_size": st.integers(0, 2**31),
})


@st.composite
def unsealed_records(draw: st.DrawFn) -> dict[str, Any]:
    """Every field of a SealedRecord except the chain position and the seal."""
    is_event = draw(st.booleans())
    return {
        "kind": "EVENT" if is_event else "REJECTION",
        "event": draw(events) if is_event else None,
        "rejection": None if is_event else draw(rejections),
        "redaction": {"policy_id": draw(text), "policy_version": draw(st.integers(1, 9)),
                      "fields": draw(st.lists(text, max_size=3))},
        "ingested_at": draw(st.integers(0, 2**62)),
        "source": {"topic": draw(text), "partition": draw(st.integers(0, 99)),
                   "offset": draw(st.integers(0, 2**40)),
                   "schema_id": draw(st.none() | st.integers(1, 2**31 - 1))},
    }


def seal_all(unsealed: Sequence[dict[str, Any]], signer: Ed25519Signer = SIGNER,
             chain_id: str = CHAIN) -> list[dict[str, Any]]:
    head = ChainHead.genesis(chain_id)
    records = []
    for u in unsealed:
        record = seal(head, copy.deepcopy(u), signer)
        head = head.advance(record)
        records.append(record)
    return records


def first_problem(
    records: Sequence[dict[str, Any]], *, keyring: Keyring | None = KEYRING,
    chain_id: str = CHAIN, expected_head: bytes | None = None,
) -> tuple[int, str] | None:
    """(index, kind) of the first entry that does not check out, walking from genesis;
    kind "head" when every entry checks out but the last hash is not ``expected_head``."""
    head = ChainHead.genesis(chain_id)
    for i, record in enumerate(records):
        problem = check_entry(head, record, keyring)
        if problem is not None:
            return i, problem.kind
        head = head.advance(record)
    if expected_head is not None and head.entry_hash != expected_head:
        return len(records), "head"
    return None


def _flip(data: bytes, position: int, mask: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= mask
    return bytes(out)


def _sample_event() -> dict[str, Any]:
    return {
        "event_id": "e-1", "event_type": "auth.login", "action": "login", "occurred_at": 1,
        "actor": {"id": "u1", "type": "user", "principal": None},
        "origin": {"service": "svc", "instance": "i1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "classification": "INTERNAL", "attributes": {},
    }


def _sample_unsealed(ingested_at: int = 1_000) -> dict[str, Any]:
    return {
        "kind": "EVENT", "event": _sample_event(), "rejection": None,
        "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
        "ingested_at": ingested_at,
        "source": {"topic": "raw", "partition": 0, "offset": 0, "schema_id": 1},
    }


# One different value per covered field: entry_hash must notice each.
FIELD_CHANGES: dict[str, Callable[[Any], Any]] = {
    "chain_id": lambda v: v + "x",
    "seq": lambda v: v + 1,
    "epoch": lambda v: v + 1,
    "kind": lambda v: "REJECTION" if v == "EVENT" else "EVENT",
    "event": lambda v: _sample_event() if v is None else None,
    "rejection": lambda v: (
        {"reason": "INVALID", "detail": "", "raw_sha256": bytes(32), "raw_size": 0}
        if v is None else None
    ),
    "redaction": lambda v: {**v, "policy_version": v["policy_version"] + 1},
    "ingested_at": lambda v: v + 1,
    "source": lambda v: {**v, "offset": v["offset"] + 1},
    "prev_hash": lambda v: _flip(v, 0, 1),
    "key_id": lambda v: v + "x",
}


# -- genesis and entry hashes --------------------------------------------------------


def test_field_change_table_covers_every_entry_field() -> None:
    """The mutation table below names every field entry_hash covers, and nothing else."""
    assert set(FIELD_CHANGES) == set(ENTRY_FIELDS)


def test_genesis_hash_is_domain_separated_per_chain() -> None:
    """The genesis link is SHA-256(genesis domain || chain id) and differs per chain."""
    assert genesis_hash("c") == sha256(GENESIS_DOMAIN, b"c")
    assert genesis_hash("c") != genesis_hash("d")
    assert genesis_hash("c") != sha256(b"c")
    assert ChainHead.genesis("c", epoch=3) == ChainHead("c", -1, genesis_hash("c"), 3)


def test_entry_hash_is_sha256_of_domain_and_canonical_body() -> None:
    """entry_hash = SHA-256(entry domain || canonical JSON of the entry body)."""
    record = seal_all([_sample_unsealed()])[0]
    assert record["entry_hash"] == sha256(ENTRY_DOMAIN, canonical_json(entry_body(record)))
    assert entry_hash(record) == record["entry_hash"]


@pytest.mark.parametrize("field", ENTRY_FIELDS)
@settings(max_examples=25, deadline=None)
@given(unsealed=unsealed_records())
def test_entry_hash_changes_with_every_body_field(field: str, unsealed: dict[str, Any]) -> None:
    """Changing any one covered field changes entry_hash."""
    record = seal_all([unsealed])[0]
    changed = {**record, field: FIELD_CHANGES[field](record[field])}
    assert changed[field] != record[field]
    assert entry_hash(changed) != entry_hash(record)


@settings(max_examples=50, deadline=None)
@given(unsealed=unsealed_records(), new_hash=st.binary(max_size=40),
       new_sig=st.binary(max_size=70))
def test_entry_hash_ignores_the_seal(
    unsealed: dict[str, Any], new_hash: bytes, new_sig: bytes
) -> None:
    """Replacing entry_hash and signature leaves entry_hash(record) unchanged."""
    record = seal_all([unsealed])[0]
    assert entry_hash({**record, "entry_hash": new_hash, "signature": new_sig}) == entry_hash(
        record
    )


@settings(max_examples=50, deadline=None)
@given(unsealed=unsealed_records().filter(lambda u: u["kind"] == "EVENT"), key=text,
       value=text)
def test_entry_hash_covers_nested_event_content(
    unsealed: dict[str, Any], key: str, value: str
) -> None:
    """Adding or changing one attribute deep inside the event changes entry_hash."""
    record = seal_all([unsealed])[0]
    changed = copy.deepcopy(record)
    attributes = changed["event"]["attributes"]
    attributes[key] = value + "!" if attributes.get(key) == value else value
    assert entry_hash(changed) != entry_hash(record)


# -- sealing -------------------------------------------------------------------------


def test_seal_fills_position_and_seal() -> None:
    """seal sets chain id, seq, epoch, prev_hash, key id, entry_hash and a domain-separated
    signature, reusing the dict it was given."""
    unsealed = _sample_unsealed()
    head = ChainHead(CHAIN, 41, b"\x07" * 32, 5)
    record = seal(head, unsealed, SIGNER)
    assert record is unsealed
    assert (record["chain_id"], record["seq"], record["epoch"]) == (CHAIN, 42, 5)
    assert record["prev_hash"] == b"\x07" * 32
    assert record["key_id"] == SIGNER.key_id
    assert record["entry_hash"] == entry_hash(record)
    public = Ed25519PublicKey.from_public_bytes(SIGNER.public_key)
    public.verify(record["signature"], SIG_ENTRY_DOMAIN + record["entry_hash"])
    assert record["signature"] != SIGNER.sign(record["entry_hash"])


def test_advance_moves_the_head_to_the_record() -> None:
    """ChainHead.advance takes seq, entry hash and epoch from the sealed record."""
    head = ChainHead.genesis(CHAIN, epoch=2)
    record = seal(head, _sample_unsealed(), SIGNER)
    assert head.advance(record) == ChainHead(CHAIN, 0, record["entry_hash"], 2)


# -- checking a chain ----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(unsealed=st.lists(unsealed_records(), min_size=1, max_size=8))
def test_sealed_chain_checks_out(unsealed: list[dict[str, Any]]) -> None:
    """A chain of random entries sealed in order passes check_entry from genesis to head."""
    records = seal_all(unsealed)
    assert first_problem(records, expected_head=records[-1]["entry_hash"]) is None
    assert [r["seq"] for r in records] == list(range(len(records)))


@settings(max_examples=25, deadline=None)
@given(unsealed=st.lists(unsealed_records(), min_size=1, max_size=5))
def test_chain_survives_avro_round_trip(unsealed: list[dict[str, Any]]) -> None:
    """Records encoded and decoded with the SealedRecord schema still hash and verify."""
    records = seal_all(unsealed)
    decoded = [SEALED_CODEC.decode(SEALED_CODEC.encode(r)) for r in records]
    assert decoded == records
    assert first_problem(decoded, expected_head=records[-1]["entry_hash"]) is None


MUTATIONS = ["prev_hash", "entry_hash", "signature", "seq", "chain_id", "reorder", "drop",
             "content"]


@settings(max_examples=120, deadline=None)
@given(unsealed=st.lists(unsealed_records(), min_size=2, max_size=7), data=st.data())
def test_any_single_mutation_is_detected(unsealed: list[dict[str, Any]], data: st.DataObject
                                         ) -> None:
    """Flipping a byte of prev_hash, entry_hash or signature, changing seq, chain id or the
    content, swapping two entries or dropping one is caught at the entry where it happened."""
    records = seal_all(unsealed)
    head = records[-1]["entry_hash"]
    n = len(records)
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    i = data.draw(st.integers(0, n - 1), label="index")
    position = data.draw(st.integers(0, 63), label="byte")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = copy.deepcopy(records)
    target = tampered[i]
    if mutation in ("prev_hash", "entry_hash", "signature"):
        target[mutation] = _flip(target[mutation], position, mask)
        expected: tuple[int, str] = (i, {"prev_hash": "link", "entry_hash": "hash",
                                         "signature": "signature"}[mutation])
    elif mutation == "seq":
        target["seq"] = data.draw(st.integers(-1, n + 5).filter(lambda s: s != i))
        expected = (i, "seq")
    elif mutation == "chain_id":
        target["chain_id"] = data.draw(text.filter(lambda c: c != CHAIN))
        expected = (i, "chain")
    elif mutation == "content":
        target["ingested_at"] += 1
        expected = (i, "hash")
    elif mutation == "reorder":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="other")
        lo = min(i, j)
        tampered[i], tampered[j] = tampered[j], tampered[i]
        expected = (lo, "seq")
    else:  # drop
        del tampered[i]
        # Dropping the last entry leaves a shorter, sound chain: only the expected head
        # (what a checkpoint states) shows the truncation.
        expected = (i, "seq") if i < n - 1 else (n - 1, "head")
    assert first_problem(records, expected_head=head) is None
    assert first_problem(tampered, expected_head=head) == expected


@settings(max_examples=30, deadline=None)
@given(unsealed=st.lists(unsealed_records(), min_size=1, max_size=4), data=st.data())
def test_without_keyring_only_signatures_go_unchecked(
    unsealed: list[dict[str, Any]], data: st.DataObject
) -> None:
    """keyring=None skips signature checks only: a flipped signature passes, a flipped
    entry hash still fails."""
    records = seal_all(unsealed)
    i = data.draw(st.integers(0, len(records) - 1))
    bad_sig = copy.deepcopy(records)
    bad_sig[i]["signature"] = _flip(bad_sig[i]["signature"], 0, 1)
    assert first_problem(bad_sig, keyring=None) is None
    assert first_problem(bad_sig) == (i, "signature")
    bad_hash = copy.deepcopy(records)
    bad_hash[i]["entry_hash"] = _flip(bad_hash[i]["entry_hash"], 0, 1)
    assert first_problem(bad_hash, keyring=None) == (i, "hash")


def test_resealed_forgery_by_untrusted_key_is_refused() -> None:
    """An attacker who rewrites an entry and re-seals it with their own key fails on the
    signature (unknown key), even though every hash and link checks out."""
    records = seal_all([_sample_unsealed(), _sample_unsealed()])
    forged = seal_all([_sample_unsealed(), _sample_unsealed()], signer=OTHER)
    assert first_problem(forged, keyring=None) is None
    problem = check_entry(ChainHead.genesis(CHAIN), forged[0], KEYRING)
    assert problem is not None and problem.kind == "unknown-key"
    assert "unknown key" in problem.message
    assert forged[0]["entry_hash"] != records[0]["entry_hash"]


def test_same_key_id_different_key_is_refused() -> None:
    """A signature by another private key under the trusted key id is invalid."""
    impostor = Ed25519Signer(bytes(range(1, 33)), key_id=SIGNER.key_id)
    record = seal(ChainHead.genesis(CHAIN), _sample_unsealed(), impostor)
    problem = check_entry(ChainHead.genesis(CHAIN), record, KEYRING)
    assert problem == EntryProblem(Kind.SIGNATURE,
                                    f"seq 0: signature by {SIGNER.key_id!r} is invalid")


@pytest.mark.parametrize(("ingested_at", "ok"), [(99, False), (100, True), (200, True),
                                                 (201, False)])
def test_signature_checked_against_key_window_at_ingestion(ingested_at: int, ok: bool) -> None:
    """The signature counts only if ingested_at lies inside the key's window (inclusive)."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 100, 200)])
    record = seal_all([_sample_unsealed(ingested_at)])[0]
    problem = check_entry(ChainHead.genesis(CHAIN), record, keyring)
    if ok:
        assert problem is None
    else:
        assert problem is not None and problem.kind == "signature"
        assert "outside its validity window" in problem.message


def test_higher_epoch_accepted_lower_epoch_fenced() -> None:
    """A new owner may continue the chain in a higher epoch; an entry of an older epoch
    after a newer one is refused as fenced."""
    first = seal(ChainHead.genesis(CHAIN, epoch=1), _sample_unsealed(), SIGNER)
    head = ChainHead.genesis(CHAIN, epoch=1).advance(first)
    newer = seal(ChainHead(CHAIN, head.seq, head.entry_hash, 2), _sample_unsealed(), SIGNER)
    assert check_entry(head, newer, KEYRING) is None
    after_newer = head.advance(newer)
    stale = seal(ChainHead(CHAIN, after_newer.seq, after_newer.entry_hash, 1),
                 _sample_unsealed(), SIGNER)
    problem = check_entry(after_newer, stale, KEYRING)
    assert problem is not None and problem.kind == "epoch"
    assert "fenced" in problem.message


def test_problem_messages_carry_expected_and_found() -> None:
    """Link and hash problems name the seq and both the stated and the calculated value."""
    record = seal_all([_sample_unsealed()])[0]
    genesis = ChainHead.genesis(CHAIN)
    bad_link = {**record, "prev_hash": bytes(32)}
    problem = check_entry(genesis, bad_link, None)
    assert problem is not None and problem.kind == "link"
    assert bytes(32).hex() in problem.message and genesis.entry_hash.hex() in problem.message
    assert (problem.expected, problem.found) == (genesis.entry_hash.hex(), bytes(32).hex())
    bad_hash = {**record, "entry_hash": b"\x01" * 32}
    problem = check_entry(genesis, bad_hash, None)
    assert problem is not None and problem.kind is Kind.HASH
    assert ("01" * 32) in problem.message and record["entry_hash"].hex() in problem.message
    assert (problem.expected, problem.found) == (record["entry_hash"].hex(), "01" * 32)
    wrong_seq = {**record, "seq": 5}
    assert check_entry(genesis, wrong_seq, None) == EntryProblem(
        Kind.SEQ, "expected seq 0, found 5", "0", "5")


@pytest.mark.parametrize("missing", [*ENTRY_FIELDS, "entry_hash", "signature"])
def test_record_missing_a_field_is_reported_not_raised(missing: str) -> None:
    """A record lacking any field (e.g. read with a tampered schema) is a "hash" problem
    naming the field, not a KeyError."""
    record = seal_all([_sample_unsealed()])[0]
    del record[missing]
    problem = check_entry(ChainHead.genesis(CHAIN), record, KEYRING)
    assert problem is not None and problem.kind is Kind.HASH
    assert f"field {missing!r} is missing" in problem.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", "0"), ("seq", True), ("epoch", None), ("chain_id", b"c"), ("prev_hash", "00"),
     ("entry_hash", None), ("signature", "sig"), ("key_id", 1), ("ingested_at", 1.5)],
)
def test_record_with_wrongly_typed_field_is_reported_not_raised(field: str, value: Any) -> None:
    """A chain-position or seal field of the wrong type is reported, not raised."""
    record = seal_all([_sample_unsealed()])[0]
    record[field] = value
    problem = check_entry(ChainHead.genesis(CHAIN), record, KEYRING)
    assert problem is not None and problem.kind is Kind.HASH
    assert f"field {field!r} is a" in problem.message


def test_unhashable_content_is_reported_not_raised() -> None:
    """Content with no canonical form (a float inside the event) is reported as a hash
    problem instead of raising TypeError."""
    record = seal_all([_sample_unsealed()])[0]
    record["event"]["attributes"] = {"n": 1.5}
    problem = check_entry(ChainHead.genesis(CHAIN), record, KEYRING)
    assert problem is not None and problem.kind is Kind.HASH
    assert "cannot be hashed" in problem.message and "float" in problem.message
