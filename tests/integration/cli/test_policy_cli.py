"""`sealtrail policy check`, as a user runs it: a subprocess of the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def test_policy_check_cli(tmp_path: Path) -> None:
    """`sealtrail policy check` describes a valid policy (encrypt rules need no keys) and
    exits 2 naming the file and the rule for an invalid one."""
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"id": "crm", "version": 3, "rules": [
        {"path": "attributes.address", "action": "encrypt"},
        {"path": "attributes.phone", "action": "mask", "pattern": r"\d(?=\d{4})"}]}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: crm\nversion: 3\nrules:\n  - {path: actor.nick, action: drop}\n")
    run = [sys.executable, "-m", "sealtrail.cli.main", "policy", "check"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "policy crm v3" in ok.stdout and "encrypt under the data key" in ok.stdout
    fail = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert fail.returncode == 2
    assert f"{bad}: policy rule 1 (actor.nick): no string field" in fail.stderr
