"""`sealtrail verify --completeness`: per raw partition, the offsets covered and any hole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from archive_builder import build_archive

from sealtrail.cli.main import main


def test_complete_archive_lists_every_partition_as_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An intact archive: each raw partition covered from offset 0 with no hole; exit 0."""
    built = build_archive(tmp_path, chains=2, segments=2, records=3)
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "COMPLETE audit.raw/0: offsets 0..5 (6 records, 1 chain(s))" in out
    assert "COMPLETE audit.raw/1: offsets 0..5" in out


def test_a_hole_is_named_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Raw offsets missing from a chain are listed as unaccounted for; exit 1."""
    built = build_archive(tmp_path, chains=2, segments=2, records=3, gap=(1, 4, 3))
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 1
    assert "HOLES    audit.raw/1: offsets 0..3, 7..8" in out
    assert "unaccounted for: 4..6" in out


def test_completeness_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the coverage is a JSON document of its own after the verify report."""
    built = build_archive(tmp_path, chains=1, segments=1, records=4)
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out[out.rindex('{\n  "completeness"'):])
    [part] = doc["completeness"]
    assert part["complete"] and part["ranges"] == [[0, 3]] and part["holes"] == []


def test_a_partition_the_index_knows_but_no_chain_covers_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A whole chain deleted: besides verify's finding, --completeness names its raw
    partition, which the signed archive index knows, as MISSING (covered by nothing)."""
    import shutil

    built = build_archive(tmp_path, chains=2, segments=2, records=3)
    shutil.rmtree(built.root / "chains" / built.chain_ids[1])
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 1
    assert "COMPLETE audit.raw/0: offsets 0..5" in out
    assert (f"MISSING  audit.raw/1: the signed archive index knows it (chain "
            f"{built.chain_ids[1]})") in out
