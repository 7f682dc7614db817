"""The readers' fencing rule: which sealed records continue a chain, and the replay of a
partition's tail that the sealer recovers from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.chain import ChainHead, genesis_hash
from sealtrail.core.fencing import Fence, Verdict, judge, replay_tail

CHAIN = "raw.0.00000000000000aa"


def rec(seq: int, epoch: int, prev: bytes, tag: str = "", chain: str = CHAIN,
        offset: int | None = None) -> dict[str, Any]:
    """A sealed record reduced to what the rule reads; its hash is derived from its body."""
    digest = hashlib.sha256(f"{chain}/{seq}/{epoch}/{prev.hex()}/{tag}".encode()).digest()
    return {"chain_id": chain, "seq": seq, "epoch": epoch, "prev_hash": prev,
            "entry_hash": digest, "source": {"offset": seq if offset is None else offset}}


def chain(n: int, epoch: int = 0, after: dict[str, Any] | None = None,
          tag: str = "") -> list[dict[str, Any]]:
    """``n`` records continuing ``after`` (or the genesis) in ``epoch``."""
    out: list[dict[str, Any]] = []
    prev = after["entry_hash"] if after else genesis_hash(CHAIN)
    start = after["seq"] + 1 if after else 0
    for seq in range(start, start + n):
        out.append(rec(seq, epoch, prev, tag))
        prev = out[-1]["entry_hash"]
    return out


def head_of(record: dict[str, Any]) -> ChainHead:
    return ChainHead(record["chain_id"], record["seq"], record["entry_hash"], record["epoch"])


@dataclass(frozen=True)
class Case:
    name: str
    record: dict[str, Any]
    verdict: Verdict


HEAD = ChainHead(CHAIN, 4, b"\x04" * 32, 2)
CASES = [
    Case("next seq, links, same epoch", rec(5, 2, b"\x04" * 32), Verdict.ADMIT),
    Case("next seq, links, higher epoch", rec(5, 3, b"\x04" * 32), Verdict.ADMIT),
    Case("next seq, links, lower epoch", rec(5, 1, b"\x04" * 32), Verdict.STALE),
    Case("next seq, other prev_hash", rec(5, 2, b"\x09" * 32), Verdict.FORK),
    Case("next seq, other prev_hash, higher epoch", rec(5, 7, b"\x09" * 32), Verdict.FORK),
    Case("same seq (re-delivery or sibling)", rec(4, 2, b"\x03" * 32), Verdict.BEHIND),
    Case("older seq, lower epoch", rec(1, 0, b"\x00" * 32), Verdict.STALE),
    Case("older seq, same epoch", rec(1, 2, b"\x00" * 32), Verdict.BEHIND),
    Case("seq beyond the next", rec(7, 2, b"\x06" * 32), Verdict.GAP),
    Case("seq beyond the next, lower epoch", rec(7, 1, b"\x06" * 32), Verdict.STALE),
    Case("another chain", rec(5, 2, b"\x04" * 32, chain="raw.0.bb"), Verdict.OTHER_CHAIN),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge(case: Case) -> None:
    """Each kind of next record gets its verdict; only an exact continuation is admitted."""
    assert judge(HEAD, case.record) is case.verdict


def test_first_entry_must_link_to_the_genesis_hash() -> None:
    """From the genesis head, seq 0 is admitted only when it links to the genesis hash."""
    genesis = ChainHead.genesis(CHAIN)
    assert judge(genesis, rec(0, 0, genesis_hash(CHAIN))) is Verdict.ADMIT
    assert judge(genesis, rec(0, 0, bytes(32))) is Verdict.FORK


def test_fence_refuses_a_zombie_after_the_new_owner_and_reports_it() -> None:
    """Owner A (epoch 0) writes, B takes over (epoch 1), then A resumes: A's records are
    refused as stale or forked and reported; B's continue the chain."""
    a = chain(3)
    b = chain(2, epoch=1, after=a[-1], tag="b")
    zombie = chain(2, epoch=0, after=a[-1], tag="a")
    b_more = chain(2, epoch=1, after=b[-1], tag="b")
    fence, reports = Fence(), []
    kept = [r for r in [*a, *b, *zombie, *b_more] if fence.admit(r, -1, b"", reports.append)]
    assert kept == [*a, *b, *b_more]
    assert len(reports) == 2 and "fenced" in reports[0] and "(stale)" in reports[0]
    assert fence.refused == {Verdict.STALE: 2}


def test_fence_admits_a_zombie_that_wrote_first_and_refuses_the_late_owner() -> None:
    """If A's records continue the head before B's first one, A's are admitted and B's
    refused (B detects this before committing, see the sealer)."""
    a = chain(3)
    zombie = chain(2, epoch=0, after=a[-1], tag="a")
    b = chain(2, epoch=1, after=a[-1], tag="b")
    fence = Fence()
    kept = [r for r in [*a, *zombie, *b] if fence.admit(r, -1, b"")]
    assert kept == [*a, *zombie]


def test_fence_seeds_from_the_archive_and_skips_re_deliveries_quietly() -> None:
    """After a restart the head comes from the archive: earlier records are skipped without
    a report, the next one must link to the archived head hash."""
    a = chain(6)
    fence, reports = Fence(), []
    assert not fence.admit(a[2], 3, a[3]["entry_hash"], reports.append)
    assert not fence.admit(a[3], 3, a[3]["entry_hash"], reports.append)
    sibling = rec(4, 0, b"\x07" * 32, "x")
    assert not fence.admit(sibling, 3, a[3]["entry_hash"], reports.append)
    assert fence.admit(a[4], 3, a[3]["entry_hash"], reports.append)
    assert fence.admit(a[5], 4, a[4]["entry_hash"], reports.append)
    assert len(reports) == 1 and "fork" in reports[0]
    assert fence.head(CHAIN) == head_of(a[5])


def test_replay_of_an_empty_tail_is_none() -> None:
    """Nothing to replay: no chain."""
    assert replay_tail([]) is None


def test_replay_skips_zombie_records_and_reports_the_highest_epoch() -> None:
    """The replay's head is the new owner's last record, not the zombie's, and the next
    owner must open an epoch above every epoch in the tail."""
    a = chain(4)
    b = chain(3, epoch=1, after=a[-1], tag="b")
    zombie = chain(3, epoch=0, after=a[-1], tag="a")
    replay = replay_tail([*a, *b[:1], *zombie, *b[1:]])
    assert replay is not None
    assert replay.head == head_of(b[-1])
    assert list(replay.admitted) == [*a, *b]
    assert replay.max_epoch == 1 and replay.refused == 3


def test_replay_of_a_tail_that_starts_inside_a_zombie_batch() -> None:
    """The tail may begin with refused records: the anchor is the highest epoch's first
    record, and the admitted history before it is found by following prev_hash."""
    a = chain(5)
    zombie = chain(3, epoch=0, after=a[1], tag="z")  # a fork of seq 2.., refused
    b = chain(3, epoch=1, after=a[-1], tag="b")
    tail = [*zombie[1:], *a[3:], *b]  # starts after zombie[0]
    replay = replay_tail(tail)
    assert replay is not None
    assert replay.head == head_of(b[-1])
    assert list(replay.admitted) == [*a[3:], *b]


def test_replay_keeps_a_zombie_batch_that_came_first() -> None:
    """Records of the older owner that continue the head before the new owner wrote are
    admitted, like any reader admits them; the head is their last one."""
    a = chain(4)
    late = chain(2, epoch=0, after=a[-1], tag="late")
    replay = replay_tail([*a, *late])
    assert replay is not None and replay.head == head_of(late[-1]) and replay.refused == 0


# -- property: replay equals the fence over the whole partition ------------------------


@st.composite
def partitions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A sealed partition written by a succession of owners, each opening a higher epoch
    from the admitted head, with zombie batches of earlier owners written after the new
    owner's first record (the order the sealer's first-write check guarantees)."""
    records: list[dict[str, Any]] = []
    admitted: list[dict[str, Any]] = []
    owners = draw(st.integers(1, 6))
    for epoch in range(owners):
        fresh = chain(draw(st.integers(1, 6)), epoch=epoch,
                      after=admitted[-1] if admitted else None, tag=f"o{epoch}")
        zombie_after = admitted[-1] if admitted else None
        records.extend(fresh[:1])
        if epoch and draw(st.booleans()):
            records.extend(chain(draw(st.integers(1, 4)), epoch=epoch - 1,
                                 after=zombie_after, tag=f"z{epoch}"))
        records.extend(fresh[1:])
        admitted.extend(fresh)
    return records


@settings(max_examples=200, deadline=None)
@given(records=partitions(), cut=st.integers(0, 40))
def test_replay_of_any_tail_with_the_latest_epoch_agrees_with_the_fence(
    records: list[dict[str, Any]], cut: int
) -> None:
    """For every suffix that still holds the newest owner's first record, the replayed head
    is the head the archiver's fence reaches reading the whole partition."""
    fence = Fence()
    for record in records:
        fence.admit(record, -1, b"")
    expected = fence.head(CHAIN)
    newest = max(r["epoch"] for r in records)
    first_newest = next(i for i, r in enumerate(records) if r["epoch"] == newest)
    tail = records[min(cut, first_newest):]
    replay = replay_tail(tail)
    assert replay is not None and replay.head == expected
    assert replay.max_epoch == newest
