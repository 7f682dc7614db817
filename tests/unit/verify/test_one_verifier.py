"""One verifier: every reader of the archive names a break the same way.

Each attack of the tamper matrix (test_verify_tamper.ATTACKS) is run through every tool
that reads the archive: verify, replay (one process and two), search index rebuild, the
HTML report's collection, prove and export-note. Each must report the very same finding
(kind, chain, segment, seq, message, expected, found) that verify reports, because they
all read through sealtrail.verify's reader and the pure core behind it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tamper import ATTACKS, K

from sealtrail.core.findings import Finding
from sealtrail.errors import DataError, IntegrityError
from sealtrail.replay import ArchiveSource, Query, replay_archive
from sealtrail.report import collect
from sealtrail.search import open_index
from sealtrail.search._rebuild import rebuild_index
from sealtrail.verify import ArchiveReader, verify_archive
from sealtrail.verify.proof import build_proof, chain_note

# keyring_without_signer breaks every chain at its first checkpoint the same way in every
# reader; it is kept. Attacks that leave the archive readable but add a chain are kept too.
NAMES = sorted(ATTACKS)


def _by_chain(findings: list[Finding]) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for f in findings:
        assert f.chain_id not in out, f"two findings for {f.chain_id}: {findings}"
        out[f.chain_id] = f
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_reader_names_the_same_break(tmp_path: Path, name: str) -> None:
    """verify, replay (1 and 2 workers), index rebuild and the report's collection report
    identical findings for the same tampered archive; prove, export (of events indexed
    before the tampering) and export-note refuse to vouch for a chain past its break,
    naming that finding."""
    attack = ATTACKS[name]
    built = attack.build(tmp_path)
    before = open_index(str(tmp_path / "before.sqlite"))
    rebuild_index(ArchiveReader(built.store, built.keyring), before)
    attack.tamper(built)
    keyring = built.keyring if name not in ("keyring_without_signer", "key_expired",
                                            "sealer_key_expired") else None
    from sealtrail.keys import load_keyring

    keyring = load_keyring(built.keyring_path) if keyring is None else keyring
    report = verify_archive(built.store, keyring)
    expected = _by_chain([f for c in report.chains for f in c.findings])
    assert expected, "the attack must break something"

    for workers in (1, 2):
        replayed = replay_archive(ArchiveSource(built.store, keyring), Query(),
                                  f"file:{tmp_path / f'r{workers}.jsonl'}",
                                  continue_on_error=True, workers=workers)
        assert _by_chain(replayed.breaks) == expected, f"replay, {workers} worker(s)"

    index = open_index(str(tmp_path / "i.sqlite"))
    rebuilt = rebuild_index(ArchiveReader(built.store, keyring), index)
    index.close()
    assert _by_chain(rebuilt.breaks) == expected, "index rebuild"

    collected = collect(ArchiveReader(built.store, keyring), None, None)
    assert _by_chain([c.problem for c in collected.chains if c.problem]) == expected, "report"

    for chain_id, finding in expected.items():
        _check_export(built, keyring, before, chain_id, finding)
        records = built.records.get(chain_id)
        if finding.kind == "completeness":  # a hole in the raw offsets, not a broken chain:
            last = next(r for r in reversed(records or []) if r["event"])  # entries after
            build_proof(built.store, last["event"]["event_id"], keyring)  # it are proven
            continue
        if records:  # an event after the break gets no proof, and the error names it
            last = next(r for r in reversed(records) if r["event"])
            covered = built.checkpoint_path(chain_id, last["seq"] // K).exists()
            if finding.kind == "unreferenced" and covered:
                # A stray segment no checkpoint covers does not bear on the covered entries:
                # the last event is still proven (and the stray is still a verify finding).
                build_proof(built.store, last["event"]["event_id"], keyring)
            else:
                with pytest.raises(IntegrityError) as caught:
                    build_proof(built.store, last["event"]["event_id"], keyring)
                assert str(finding) in str(caught.value), "prove"
        signer = built.archivers[-1]
        with pytest.raises((IntegrityError, DataError)) as refused:
            chain_note(built.store, chain_id, origin="o", name="o", signer=signer,
                       public_key=signer.public_key, keyring=keyring)
        assert str(finding) in str(refused.value), "export-note"


def _check_export(built: object, keyring: object, index: object, chain_id: str,
                  finding: Finding) -> None:
    """Export every event of ``chain_id`` the index held before the tampering: refused,
    naming ``finding``; made, when the finding is only a hole in the raw offsets."""
    from sealtrail.export import build_export
    from sealtrail.search import parse_query

    query = parse_query("")
    rows = [r for r in index.search(query) if r.chain_id == chain_id]  # type: ignore[attr-defined]
    if not rows or finding.kind == "unreferenced":
        return
    if finding.kind == "completeness":  # a hole in the raw offsets unmakes no proof
        build_export(built.store, keyring, rows, query,  # type: ignore[attr-defined]
                     coverage=index.coverage(), operator="t")  # type: ignore[attr-defined]
        return
    with pytest.raises((IntegrityError, DataError)) as refused:
        build_export(built.store, keyring, rows, query,  # type: ignore[attr-defined]
                     coverage=index.coverage(), operator="t")  # type: ignore[attr-defined]
    assert str(finding) in str(refused.value), "export"
