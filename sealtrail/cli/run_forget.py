"""``sealtrail forget SUBJECT``: crypto-shred a data subject and emit the erasure receipt."""

from __future__ import annotations

import argparse

from sealtrail.cli.common import keys_location, operator_option, print_json, settings_from, using
from sealtrail.config import Settings
from sealtrail.errors import ConfigError, SealtrailError, TransportError

RECEIPT_EVENT_TYPE = "privacy.erasure"


def configure_forget(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Crypto-shredding for an erasure request: destroy the data key of SUBJECT (the value "
        "of the policy's subject field, e.g. an actor id) in the key store (the keys "
        "directory: keys_dir, else <home>/keys). Every field the policy encrypted for that "
        "subject becomes unreadable everywhere it was copied (sealed topic, archive, replays, "
        "exports); archives still verify, since the chain covers the ciphertext. Then an "
        "erasure receipt, event type privacy.erasure, naming the subject only by its opaque "
        "reference, is emitted to the raw topic and sealed like any event. Exit 0 when the "
        "key is destroyed and the receipt delivered; 2 when no receipt could be emitted (the "
        "key is destroyed all the same; run forget again to emit one).")
    p.add_argument("subject", metavar="SUBJECT", help="the data subject, e.g. an actor id")
    p.add_argument("--reason", default="", metavar="TEXT",
                   help="why, e.g. the erasure request's ticket (goes into the receipt, "
                   "which is archived: a reason containing SUBJECT is refused)")
    operator_option(p, "as the receipt's actor", who="who runs the erasure")
    p.add_argument("--no-receipt", action="store_true",
                   help="destroy the key without emitting a receipt (e.g. no broker reachable)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=_forget)


def _forget(args: argparse.Namespace) -> None:
    from sealtrail.keys.subject import LocalKeyStore

    settings = settings_from(args)
    if not args.subject:
        raise ConfigError("forget needs a non-empty SUBJECT")
    if reason_names_subject(args.reason, args.subject):
        # The receipt is sealed into WORM storage: a reason naming the subject would keep
        # in clear, forever, the very thing the erasure is about.
        raise ConfigError("--reason contains the subject; the erasure receipt is archived "
                          "for good, so give a reference instead (e.g. the request's ticket "
                          "id). Nothing was destroyed.")
    where = keys_location(settings)
    with using(where):
        store = LocalKeyStore(settings.keys)
        ref = store.subject_ref(args.subject)
        destroyed = store.forget(args.subject)
    result: dict[str, object] = {"subject_ref": ref, "destroyed_key_ids": destroyed,
                                 "receipt_event_id": None}
    what = (f"destroyed data key {', '.join(destroyed)}" if destroyed
            else "no data key found (already forgotten, or nothing was encrypted for it)")
    if not args.json:
        print(f"subject {ref}: {what} (key store {where})")
    try:
        if args.no_receipt:
            if not args.json:
                print("no erasure receipt emitted (--no-receipt)")
        else:
            _emit_receipt(args, settings, ref, destroyed, result)
    finally:
        if args.json:
            print_json(result)


def reason_names_subject(reason: str, subject: str) -> bool:
    """Whether ``reason`` contains ``subject`` (ignoring case and surrounding blanks)."""
    needle = subject.strip().casefold()
    return bool(needle) and needle in reason.casefold()


def _emit_receipt(args: argparse.Namespace, settings: Settings, ref: str,
                  destroyed: list[str], result: dict[str, object]) -> None:
    from sealtrail.custody import operator_name
    from sealtrail.producers import AuditClient

    try:
        client = AuditClient.from_settings(settings, service="sealtrail-forget")
    except ConfigError as exc:
        raise ConfigError(f"the key is destroyed, but NO erasure receipt was emitted: {exc}. "
                          "Run `sealtrail forget` again with a broker configured to emit "
                          "one.") from exc
    try:
        attributes = {"destroyed_key_ids": ",".join(destroyed),
                      "keys_destroyed": str(len(destroyed))}
        if args.reason:
            attributes["reason"] = args.reason
        event_id = client.emit(
            RECEIPT_EVENT_TYPE, "forget",
            actor_id=operator_name(settings, args.operator), actor_type="user",
            resource_type="data_subject", resource_id=ref,
            classification="RESTRICTED", attributes=attributes,
        )
        undelivered = client.flush(30)
    except SealtrailError as exc:
        raise TransportError(f"the key is destroyed, but the erasure receipt failed: "
                             f"{exc}") from exc
    finally:
        client.close(10)
    if undelivered:
        raise TransportError(
            f"the key is destroyed, but the erasure receipt {event_id} was not confirmed by "
            "the broker within 30 s; it stays in the producer spool and is sent the next "
            "time `sealtrail forget` runs")
    result["receipt_event_id"] = event_id
    if not args.json:
        print(f"erasure receipt {event_id} ({RECEIPT_EVENT_TYPE}) emitted to "
              f"{settings.raw_topic}")
