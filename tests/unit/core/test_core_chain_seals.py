"""sealtrail.core.chain's seals (record format 2): entry signatures, batch seals and the
rule that walks them (Seals), beside test_core_chain.py (entry hashes, links, format 1)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import merkle
from sealtrail.core.chain import (
    BATCH_SEAL_SIZE,
    BATCH_SEAL_TAG,
    ChainHead,
    Seals,
    batch_statement,
    check_entry,
    seal,
    seal_batch,
    sealed_prefix,
)
from sealtrail.core.findings import Kind
from sealtrail.core.hashing import SIG_BATCH_DOMAIN
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey

SIGNER = Ed25519Signer(bytes(range(32)))
KEYRING = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
CHAIN = "raw.0.0123456789abcdef"


def _unsealed(n: int) -> dict[str, Any]:
    return {"kind": "REJECTION", "event": None,
            "rejection": {"reason": "INVALID", "detail": f"n{n}", "raw_sha256": bytes(32),
                          "raw_size": n},
            "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
            "ingested_at": 1_000 + n,
            "source": {"topic": "raw", "partition": 0, "offset": n, "schema_id": None}}


def chain(layout: str) -> list[dict[str, Any]]:
    """Records sealed by ``layout``, one letter an entry: "e" entry-signed, "u" unsigned,
    "s" unsigned and the seal of the batch since the last signed entry."""
    head, records, batch = ChainHead.genesis(CHAIN), [], []
    for n, form in enumerate(layout):
        record = seal(head, _unsealed(n), SIGNER, sign=form == "e")
        head = head.advance(record)
        records.append(record)
        if form != "e":
            batch.append(record["entry_hash"])
        if form == "s":
            seal_batch(record["seq"] + 1 - len(batch), batch, record, SIGNER)
            batch = []
    return records


def walk(records: list[dict[str, Any]]) -> tuple[list[str | None], Seals]:
    """Seals.entry's answer for each record, in order, from seq 0."""
    seals = Seals(0)
    return [seals.entry(KEYRING, r["seq"], r["key_id"], r["entry_hash"], r["signature"],
                        r["ingested_at"]) for r in records], seals


def test_batch_statement_layout_is_pinned() -> None:
    """domain || u64 first || u64 last || i64 sealed_at (big-endian) || root || head."""
    got = batch_statement(1, 258, -2, b"\xaa" * 32, b"\xbb" * 32)
    assert SIG_BATCH_DOMAIN == b"sealtrail:sig:batch:v1\x00"
    assert got == (b"sealtrail:sig:batch:v1\x00" + bytes.fromhex(
        "0000000000000001" "0000000000000102" "fffffffffffffffe") + b"\xaa" * 32
        + b"\xbb" * 32)
    assert len(got) == 23 + 24 + 64
    assert (BATCH_SEAL_TAG, BATCH_SEAL_SIZE) == (b"\x01", 65)


def test_a_batch_seal_signs_the_statement_of_its_batch() -> None:
    """seal_batch: tag 0x01 then Ed25519 over the statement of first..last, the seal's
    ingested_at, the RFC 6962 root of the batch's entry hashes and the seal's hash."""
    records = chain("uus")
    last = records[-1]
    statement = batch_statement(0, 2, last["ingested_at"],
                                merkle.root([r["entry_hash"] for r in records]),
                                last["entry_hash"])
    assert last["signature"] == BATCH_SEAL_TAG + SIGNER.sign(statement)
    assert [r["signature"] for r in records[:2]] == [b"", b""]


@pytest.mark.parametrize("layout", ["eee", "s", "us", "uuuus", "sususs", "eeus", "eussuuse",
                                    "ees" + "u" * 9 + "s"])
def test_entry_signatures_and_batches_of_any_size_check_out(layout: str) -> None:
    """Entry signatures, batches of 1..N and format 1 then format 2 in one chain (and
    back): every entry passes, nothing stays open, first_seq follows the last signed."""
    records = chain(layout)
    answers, seals = walk(records)
    assert answers == [None] * len(records)
    assert not seals.open and seals.first_seq == len(records)
    head = ChainHead.genesis(CHAIN)
    shared = Seals(0)
    for r in records:
        assert check_entry(head, r, KEYRING, shared) is None
        head = head.advance(r)


def test_an_unsealed_tail_stays_open_and_is_not_evidence() -> None:
    """Unsigned entries after the last seal: Seals answers None (waiting) and stays open;
    unsealed() names them; check_entry alone refuses an unsigned entry."""
    records = chain("usuu")
    answers, seals = walk(records)
    assert answers == [None] * 4
    assert seals.open and seals.first_seq == 2 and len(seals.hashes) == 2
    assert seals.unsealed(3).startswith("seq 2..3 are unsigned and no batch seal")
    problem = check_entry(ChainHead.genesis(CHAIN), chain("u")[0], KEYRING)
    assert problem is not None and problem.kind is Kind.SIGNATURE
    assert "seq 0..0 are unsigned" in problem.message


def test_check_entry_alone_takes_a_batch_seal_of_itself_only() -> None:
    """Without a walk, a seal of a one-entry batch verifies; a seal of more does not."""
    assert check_entry(ChainHead.genesis(CHAIN), chain("s")[0], KEYRING) is None
    records = chain("us")
    head = ChainHead.genesis(CHAIN).advance(records[0])
    problem = check_entry(head, records[1], KEYRING)
    assert problem is not None and problem.kind is Kind.SIGNATURE


def test_an_entry_signature_after_unsigned_entries_is_a_break() -> None:
    """An entry signature does not close a batch, even a valid one."""
    answers, _ = walk(chain("uue"))
    assert answers[:2] == [None, None]
    assert answers[2] is not None and "carries an entry signature, not a batch seal" in \
        answers[2]


@pytest.mark.parametrize(("change", "text"), [
    (lambda s: s[:63], "63 bytes"), (lambda s: s + b"\x00", "66 bytes"),
    (lambda s: b"\x02" + s[1:], "65 bytes"), (lambda s: b"\x00" * 10, "10 bytes"),
    (lambda s: s[:1] + bytes([s[1] ^ 1]) + s[2:], "is invalid"),
])
def test_a_damaged_seal_is_a_signature_problem(change: Any, text: str) -> None:
    records = chain("uus")
    records[2]["signature"] = change(records[2]["signature"])
    answers, _ = walk(records)
    assert answers[:2] == [None, None]
    assert answers[2] is not None and text in answers[2]


def test_the_seal_counts_at_its_own_time() -> None:
    """The key must be valid at the seal's ingested_at; the batch's earlier entries may be
    outside the window, a seal outside it fails."""
    records = chain("uus")
    window = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 1_002, 1_002)])
    seals = Seals(0)
    assert [seals.entry(window, r["seq"], r["key_id"], r["entry_hash"], r["signature"],
                        r["ingested_at"]) for r in records] == [None, None, None]
    late = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 0, 1_001)])
    seals = Seals(0)
    answers = [seals.entry(late, r["seq"], r["key_id"], r["entry_hash"], r["signature"],
                           r["ingested_at"]) for r in records]
    assert answers[2] is not None and "validity window" in answers[2]


@settings(max_examples=40, deadline=None)
@given(layout=st.lists(st.just("e") | st.integers(0, 4).map(lambda k: "u" * k + "s"),
                       min_size=1, max_size=5).map("".join),
       data=st.data())
def test_any_changed_hash_or_signature_byte_breaks_the_walk(layout: str,
                                                            data: st.DataObject) -> None:
    """In any mix of entry signatures and batches (ending signed), changing one byte of an
    entry's hash or seal makes some entry's answer a problem, or leaves a batch open."""
    records = chain(layout)
    assert walk(records)[0] == [None] * len(records)
    i = data.draw(st.integers(0, len(records) - 1))
    field = "entry_hash" if not records[i]["signature"] else data.draw(
        st.sampled_from(["entry_hash", "signature"]))
    tampered = copy.deepcopy(records)
    value = bytearray(tampered[i][field])
    value[data.draw(st.integers(0, len(value) - 1))] ^= data.draw(st.integers(1, 255))
    tampered[i][field] = bytes(value)
    answers, seals = walk(tampered)
    assert any(a is not None for a in answers) or seals.open


@given(st.lists(st.booleans(), max_size=20), st.data())
def test_sealed_prefix_ends_at_the_last_signed_entry(signed: list[bool], data: Any) -> None:
    """core.chain.sealed_prefix, the one rule for where an open batch starts (archiver,
    recovery, proofs): the records after the last signed one, within the first ``end``."""
    records = [{"signature": b"\x01" * 65 if s else b""} for s in signed]
    end = data.draw(st.integers(0, len(records)))
    want = max((i + 1 for i, s in enumerate(signed[:end]) if s), default=0)
    assert sealed_prefix(records, end) == want
    assert sealed_prefix(records[:end]) == want
