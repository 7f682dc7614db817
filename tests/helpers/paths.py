"""Where things are, for tests at any depth under tests/."""

from __future__ import annotations

from pathlib import Path

#: tests/
TESTS = Path(__file__).resolve().parents[1]
#: The repository root (docs/, deploy/, examples/, pipeline/ ...).
REPO = TESTS.parent
#: tests/vectors/: the golden vectors of docs/format.md.
VECTORS = TESTS / "vectors"


def module_path(name: str) -> Path:
    """The one test module called ``name`` (basenames are unique across tests/)."""
    [path] = TESTS.rglob(name)
    return path
