"""Object Lock checks (``verify --locks``): every object at least as protected as its
retention class requires, and the legal holds the hold manifests call for. A lock state
that cannot be read (a server error) is said to be so, never reported as "no retention"."""

from __future__ import annotations

from datetime import datetime

from sealtrail.archive import ArchiveError, ArchiveStore, NoRetentionError, ObjectMissingError
from sealtrail.archive import iso_z as _iso
from sealtrail.core import layout
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.governance.retention import RetentionPolicy

__all__ = ["check_holds", "lock_problem"]


def lock_problem(store: ArchiveStore, key: str, policy: RetentionPolicy, class_name: str,
                 until: datetime) -> tuple[Kind, str] | None:
    """(kind, message) when ``key`` is less protected than class ``class_name`` requires."""
    try:
        ret = store.retention(key)
    except ObjectMissingError:
        return None  # reported by the chain walk
    except NoRetentionError as exc:
        return Kind.UNLOCKED, f"object has no Object Lock retention ({exc})"
    except ArchiveError as exc:
        return Kind.LOCK_UNREADABLE, (f"its Object Lock state could not be read, so it was "
                                      f"not checked (a server or permission error, not a "
                                      f"missing lock): {exc}")
    if policy.mode == "COMPLIANCE" and ret.mode != "COMPLIANCE":
        return Kind.UNDER_RETAINED, (f"lock mode is {ret.mode}, configured mode is COMPLIANCE "
                                     "(GOVERNANCE can be bypassed)")
    if ret.retain_until < until:
        return Kind.UNDER_RETAINED, (f"retained until {_iso(ret.retain_until)}, class "
                                     f"{class_name} requires at least {_iso(until)}")
    return None


def _chain_of(key: str) -> str:
    return key.split("/")[1] if key.startswith(layout.CHAINS) else ARCHIVE


def check_holds(store: ArchiveStore) -> list[Finding]:
    """A finding for every object a case's hold manifest lists whose legal hold is off."""
    from sealtrail.archive._s3 import UNTRACKED_HOLD
    from sealtrail.governance.holds import active_holds

    findings = []
    for key, cases in sorted(active_holds(store).items()):
        try:
            held = set(store.retention(key).legal_holds)
        except ObjectMissingError:
            findings.append(Finding(Kind.MISSING, _chain_of(key), f"object under legal hold "
                                    f"of {', '.join(sorted(cases))} is gone", key))
            continue
        except NoRetentionError as exc:
            findings.append(Finding(Kind.UNLOCKED, _chain_of(key), str(exc), key))
            continue
        except ArchiveError as exc:
            findings.append(Finding(Kind.LOCK_UNREADABLE, _chain_of(key), "its legal hold "
                                    f"could not be read (a server or permission error): {exc}",
                                    key))
            continue
        lacking = sorted(c for c in cases if c not in held and UNTRACKED_HOLD not in held)
        server = getattr(store, "server_legal_hold", None)
        if not lacking and server is not None and not server(key):
            lacking = sorted(cases)  # recorded by sealtrail, but the server's hold is OFF
        if lacking:
            findings.append(Finding(Kind.HOLD_MISSING, _chain_of(key), "no legal hold for "
                                    f"case(s) {', '.join(lacking)} although their manifest "
                                    "lists it", key))
    return findings
