"""Subcommands for key management: keys init | rotate | rotate-hmac | export-public."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sealtrail.cli.common import print_json, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser(
        "keys", help="create and rotate signing keys, export the public keyring",
        description="Key files live in the keys directory (setting keys_dir, default "
        "<home>/keys), private ones with mode 0600; see docs/keys.md.",
    )
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k = ksub.add_parser("init", help="create the signing, HMAC and master keys (0600) and "
                        "public.json",
                        description="Create <keys_dir>/signing.key (Ed25519), hmac.key "
                        "(pseudonymisation), master.key (wraps subject data keys), dlq.key "
                        "(encrypts dead letters) with mode 0600, and public.json, the keyring "
                        "to give verifiers. Existing keys are kept; missing ones are added.")
    k.set_defaults(func=_keys_init)
    k = ksub.add_parser(
        "rotate", help="make a new signing key active; the old one stays verifiable",
        description="Create a new Ed25519 signing key and make it the active one. The old "
        "private key moves to <keys_dir>/retired/ (0600); public.json gets the new key, valid "
        "from now, and the old key's not_after set to now + --grace seconds, so records the "
        "old key signed keep verifying and nothing it signs later does. Running sealers and "
        "archivers switch to the new key within a second, without a restart. Hand the new "
        "public.json to verifiers (`sealtrail keys export-public`).",
    )
    k.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="how long the old key stays valid after now (default 10: running "
                   "processes reload within about 1 s)")
    k.add_argument("--hmac", action="store_true", help="also rotate the HMAC key")
    k.set_defaults(func=_keys_rotate)
    k = ksub.add_parser(
        "rotate-hmac", help="replace the pseudonymisation (HMAC) key",
        description="Replace hmac.key; the old one moves to <keys_dir>/retired/. Pseudonyms "
        "carry the key id (hmac:<key id>:...), so old and new ones are told apart; values "
        "no longer join across the rotation. Running sealers pick up the key within a second.",
    )
    k.set_defaults(func=_keys_rotate_hmac)
    k = ksub.add_parser("export-public", help="print the public keyring")
    k.set_defaults(func=_keys_export)


def _keys_init(args: argparse.Namespace) -> int:
    from sealtrail.keys import PUBLIC_KEYRING, init_keys

    keys_dir = settings_from(args).keys
    signer, created = init_keys(keys_dir)
    verb = "created" if created else "kept existing"
    print(f"{verb} signing key {signer.key_id} in {keys_dir} (mode 0600); "
          f"public keyring: {keys_dir / PUBLIC_KEYRING}")
    return 0


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")


def _keys_rotate(args: argparse.Namespace) -> int:
    from sealtrail.keys import DEFAULT_GRACE_S, PUBLIC_KEYRING, rotate_signing_key

    keys_dir = settings_from(args).keys
    grace = DEFAULT_GRACE_S if args.grace is None else args.grace
    rotation = rotate_signing_key(keys_dir, grace_s=grace)
    print(f"signing key rotated: {rotation.new_key_id} is active from {_when(rotation.at_us)}; "
          f"{rotation.old_key_id} retired (valid until {_when(rotation.old_not_after)}, "
          f"private key kept in {rotation.retired_file}). Give verifiers the updated "
          f"{keys_dir / PUBLIC_KEYRING}.")
    if args.hmac:
        return _keys_rotate_hmac(args)
    return 0


def _keys_rotate_hmac(args: argparse.Namespace) -> int:
    from sealtrail.keys import rotate_hmac_key

    old, new = rotate_hmac_key(settings_from(args).keys)
    print(f"HMAC key rotated: {old} -> {new}; new pseudonyms read hmac:{new}:...")
    return 0


def _keys_export(args: argparse.Namespace) -> int:
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring

    keyring = load_keyring(settings_from(args).keys / PUBLIC_KEYRING)
    print_json(keyring.to_json())
    return 0
