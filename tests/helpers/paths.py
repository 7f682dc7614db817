"""Where things are, for tests at any depth under tests/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

#: tests/
TESTS = Path(__file__).resolve().parents[1]
#: The repository root (docs/, deploy/, examples/, pipeline/ ...).
REPO = TESTS.parent
#: tests/vectors/: the golden vectors of docs/format.md.
VECTORS = TESTS / "vectors"
#: Upstream conformance data (Avro, RFC 6962, RFC 8032), read in place and never copied:
#: $SEALTRAIL_CONFORMANCE_DIR, else ../shared/conformance beside the repository.
CONFORMANCE = Path(os.environ.get("SEALTRAIL_CONFORMANCE_DIR") or REPO.parent / "shared"
                   / "conformance")


def load_conformance(name: str) -> dict[str, Any] | None:
    """The conformance file ``name`` as JSON; None when it is absent."""
    path = CONFORMANCE / name
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def conformance_missing(name: str) -> str:
    """Why a test of the conformance file ``name`` is skipped."""
    return (f"conformance file {name} not found in {CONFORMANCE} "
            "(set SEALTRAIL_CONFORMANCE_DIR to the shared conformance folder)")


def need_conformance(name: str) -> dict[str, Any]:
    """The conformance file ``name`` as JSON; skips the test, saying why, when it is absent."""
    doc = load_conformance(name)
    if doc is None:
        pytest.skip(conformance_missing(name))
    return doc


def module_path(name: str) -> Path:
    """The one test module called ``name`` (basenames are unique across tests/)."""
    [path] = TESTS.rglob(name)
    return path
