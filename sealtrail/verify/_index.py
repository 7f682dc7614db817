"""Reading the signed archive index for verify: the newest index and the one before it,
checked (signature, link, append-only), and the schema files it lists."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.core import layout
from sealtrail.core.chain_walk import Anchor
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.index import SignedIndex, index_problems
from sealtrail.core.signing import Keyring
from sealtrail.errors import IntegrityError

__all__ = ["IndexView", "read_index"]


@dataclass
class IndexView:
    """The newest signed index (when it checks out) and what was found about the series."""

    newest: SignedIndex | None = None
    count: int = 0  # index objects in the archive
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schemas_checked: int = 0

    def anchors(self) -> dict[str, list[Anchor]]:
        """Per chain, the checkpoint the newest index says it reached."""
        if self.newest is None:
            return {}
        source = f"the signed archive index {self.newest.seq}"
        return {c.chain_id: [Anchor(source, c.checkpoint_index, c.checkpoint_hash, c.tree_size)]
                for c in self.newest.chains}


def _load(store: ArchiveStore, key: str, keyring: Keyring, view: IndexView
          ) -> SignedIndex | None:
    try:
        found = SignedIndex.from_bytes(store.get(key))
    except ObjectMissingError:
        view.findings.append(Finding(Kind.MISSING, ARCHIVE, "index removed while verifying",
                                     key))
        return None
    except IntegrityError as exc:
        view.findings.append(Finding(Kind.MALFORMED, ARCHIVE, str(exc), key))
        return None
    problem = found.problem(keyring)
    if problem:
        kind = Kind.UNKNOWN_KEY if problem.startswith("unknown key") else Kind.SIGNATURE
        view.findings.append(Finding(kind, ARCHIVE, f"index {found.seq}: {problem}", key))
        return None
    if layout.index_key(found.seq) != key:
        view.findings.append(Finding(Kind.REORDERED, ARCHIVE, f"index file {key} holds index "
                                     f"{found.seq}", key))
        return None
    if found.to_bytes() != store.get(key):
        view.findings.append(Finding(Kind.MODIFIED, ARCHIVE, f"index {found.seq} is not in "
                                     "canonical form", key))
        return None
    return found


def read_index(store: ArchiveStore, keyring: Keyring) -> IndexView:
    """The newest index of ``store``, checked, and the series' findings: an index missing
    from the numbering, the newest not an append-only successor of the one before it."""
    view = IndexView()
    keys = store.list(layout.INDEX)
    numbered = sorted((n, k) for k in keys if (n := layout.parse_index(k)) is not None)
    view.count = len(numbered)
    for stray in sorted(set(keys) - {k for _, k in numbered}):
        view.findings.append(Finding(Kind.MALFORMED, ARCHIVE, "not an index file", stray))
    for expected, (n, key) in enumerate(numbered):
        if n != expected:
            view.findings.append(Finding(Kind.MISSING, ARCHIVE, f"index {expected} is missing "
                                         f"(next found: {key})", layout.index_key(expected)))
            break
    if not numbered:
        return view
    newest = _load(store, numbered[-1][1], keyring, view)
    if newest is not None and len(numbered) > 1:
        older = _load(store, numbered[-2][1], keyring, view)
        if older is not None:
            for problem in index_problems(newest, older):
                view.findings.append(Finding(Kind.FORK, ARCHIVE, problem, numbered[-1][1]))
    view.newest = newest
    return view


def check_schemas(store: ArchiveStore, view: IndexView) -> None:
    """Every schema file the newest index lists is there with the bytes it lists; schema
    files it does not list are named as unsigned context."""
    listed = {s.key: s for s in view.newest.schemas} if view.newest is not None else {}
    for key, entry in sorted(listed.items()):
        try:
            digest = hashlib.sha256(store.get(key)).digest()
        except ObjectMissingError:
            view.findings.append(Finding(Kind.MISSING, ARCHIVE, "schema file listed by the "
                                         "signed archive index is gone", key))
            continue
        view.schemas_checked += 1
        if digest != entry.sha256:
            view.findings.append(Finding(Kind.MODIFIED, ARCHIVE, "schema file differs from "
                                         "the one the signed archive index lists", key, None,
                                         entry.sha256.hex(), digest.hex()))
    unlisted = [k for k in store.list("schemas/") if k not in listed]
    if unlisted:
        view.notes.append(f"{len(unlisted)} schema file(s) are not covered by the signed "
                          "archive index and are unsigned context, not evidence: "
                          + ", ".join(unlisted[:3]) + (" ..." if len(unlisted) > 3 else ""))
