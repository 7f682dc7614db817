"""The acceptance check of the archive's evidence, on copies of the demo archive, as an
auditor runs it.

After `sealtrail witness .sealtrail/archive --keys .sealtrail/keys/public.json --state W` on
the untouched archive: `verify --witness W` passes on it; a whole chain deleted makes plain
`verify` exit 1; a middle segment deleted after every retention date outside chains/ was
set to 2020 makes plain `verify` exit 1; the newest segment of the largest chain and its
checkpoints from that number on removed make `verify --witness W` exit 1, and `witness` on
that copy (with a copy of W) exit 1, recording nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cli import run


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.stack
def test_evidence_acceptance_check(tmp_path: Path) -> None:
    demo = run(["demo"], tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    archive, keys = tmp_path / ".sealtrail" / "archive", ".sealtrail/keys/public.json"
    witness = run(["witness", ".sealtrail/archive", "--keys", keys, "--state", "W"], tmp_path)
    assert witness.returncode == 0, witness.stdout + witness.stderr
    assert "WITNESSED: 3 chains" in witness.stdout
    ok = run(["verify", ".sealtrail/archive", "--keys", keys, "--witness", "W"], tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "witness records witness sealtrail-witness" in ok.stdout

    chains = sorted((archive / "chains").iterdir(), key=lambda p: p.name)

    whole = tmp_path / "whole"
    shutil.copytree(archive, whole)
    shutil.rmtree(whole / "chains" / chains[0].name)
    proc = run(["verify", "whole", "--keys", keys], tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert f"chain {chains[0].name}" in proc.stdout and ": missing: the chain is gone" in \
        proc.stdout

    purged = tmp_path / "purged"
    shutil.copytree(archive, purged)
    for sidecar in (purged / "_retention").rglob("*.json"):
        doc = json.loads(sidecar.read_text())
        doc["retain_until"] = "2020-01-01T00:00:00Z"
        sidecar.write_text(json.dumps(doc))
    largest = max(chains, key=lambda p: len(list((p / "segments").iterdir())))
    segments = sorted((purged / "chains" / largest.name / "segments").iterdir())
    assert len(segments) >= 3, "the demo writes several segments per chain"
    segments[1].unlink()  # a middle one
    proc = run(["verify", "purged", "--keys", keys], tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "missing: segment is missing" in proc.stdout and "signed retain-until" in proc.stdout

    rolled = tmp_path / "rolled"
    shutil.copytree(archive, rolled)
    newest = sorted((rolled / "chains" / largest.name / "segments").iterdir())[-1]
    number = int(newest.stem)
    newest.unlink()
    for cp in (rolled / "chains" / largest.name / "checkpoints").iterdir():
        if int(cp.stem) >= number:
            cp.unlink()
    for index in (rolled / "index").iterdir():  # and every index, so the index cannot tell
        index.unlink()
    proc = run(["verify", "rolled", "--keys", keys, "--witness", "W"], tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert f"chain {largest.name}" in proc.stdout and "rollback" in proc.stdout
    shutil.copytree(tmp_path / "W", tmp_path / "W2")
    before = _files(tmp_path / "W2")
    proc = run(["witness", "rolled", "--keys", keys, "--state", "W2"], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REFUSED" in proc.stdout and _files(tmp_path / "W2") == before
