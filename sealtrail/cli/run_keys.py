"""Subcommands for key management: keys init | rotate | rotate-hmac | export-public."""

from __future__ import annotations

import argparse
import sys

from sealtrail.cli.common import keys_hint, keys_location, print_json, settings_from, using
from sealtrail.config import Settings
from sealtrail.core.times import format_time


def configure_keys(keys: argparse.ArgumentParser) -> None:
    keys.description = ("Key files live in the keys directory (setting keys_dir, default "
                        "<home>/keys), private ones with mode 0600; see docs/keys.md.")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k = ksub.add_parser("init", help="create the signing, HMAC and master keys (0600) and "
                        "public.json",
                        description="Create <keys_dir>/signing.key (Ed25519), hmac.key "
                        "(pseudonymisation), master.key (wraps subject data keys), dlq.key "
                        "(encrypts dead letters) with mode 0600, and public.json, the keyring "
                        "to give verifiers. Existing keys are kept; missing ones are added.")
    k.set_defaults(func=_keys_init)
    k = ksub.add_parser(
        "rotate", help="make a new signing key active; destroy the old private key",
        description="Create a new Ed25519 signing key and make it the active one. "
        "public.json gets the new key, valid from now, and the old key's not_after set to "
        "now + --grace seconds, so records the old key signed keep verifying. The old "
        "private key is destroyed (overwritten, then removed): a retired key that still "
        "exists could sign backdated evidence. --keep-retired keeps it instead, encrypted "
        "under a passphrase, in <keys_dir>/retired/<key id>.pem (0600). Running sealers and "
        "archivers switch to the new key within a second, without a restart. Hand the new "
        "public.json to verifiers (`sealtrail keys export-public`).",
    )
    k.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="how long the old key stays valid after now (default 10: running "
                   "processes reload within about 1 s)")
    k.add_argument("--keep-retired", action="store_true",
                   help="keep the old private key, encrypted (PKCS#8, passphrase from "
                   "--passphrase-file or the retired_key_passphrase setting, i.e. "
                   "$SEALTRAIL_RETIRED_KEY_PASSPHRASE, at least 12 characters); default: "
                   "destroy it")
    k.add_argument("--passphrase-file", metavar="FILE",
                   help="file holding the passphrase for --keep-retired")
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


def _keys_init(args: argparse.Namespace) -> None:
    from sealtrail.keys import PUBLIC_KEYRING, init_keys

    settings = settings_from(args)
    keys_dir, where = settings.keys, keys_location(settings)
    with using(where):
        signer, created = init_keys(keys_dir)
    verb = "created" if created else "kept existing"
    print(f"{verb} signing key {signer.key_id} in {keys_dir} (mode 0600; {where.origin}); "
          f"public keyring: {keys_dir / PUBLIC_KEYRING}")


def _keys_rotate(args: argparse.Namespace) -> None:
    from sealtrail.keys import DEFAULT_GRACE_S, PUBLIC_KEYRING, rotate_signing_key

    settings = settings_from(args)
    keys_dir = settings.keys
    grace = DEFAULT_GRACE_S if args.grace is None else args.grace
    passphrase = _passphrase(args, settings) if args.keep_retired else None
    with using(keys_location(settings), hint=keys_hint(settings)):
        rotation = rotate_signing_key(keys_dir, grace_s=grace, keep_passphrase=passphrase)
    kept = (f"private key kept encrypted in {rotation.retired_file}" if rotation.retired_file
            else "private key destroyed")
    print(f"signing key rotated: {rotation.new_key_id} is active from "
          f"{format_time(rotation.at_us)}; {rotation.old_key_id} retired (valid until "
          f"{format_time(rotation.old_not_after)}, "
          f"{kept}). Give verifiers the updated {keys_dir / PUBLIC_KEYRING}.")
    for path in rotation.plaintext_retired:
        print(f"WARNING: {path} holds a retired signing key IN CLEAR (kept by an earlier "
              "version): it can still sign backdated evidence. Destroy it (shred -u), or keep "
              "it encrypted offline (docs/keys.md).", file=sys.stderr)
    if args.hmac:
        _keys_rotate_hmac(args)


def _passphrase(args: argparse.Namespace, settings: Settings) -> bytes:
    """The passphrase for --keep-retired, from --passphrase-file or the
    ``retired_key_passphrase`` setting."""
    from pathlib import Path

    from sealtrail.errors import ConfigError

    if args.passphrase_file:
        try:
            text = Path(args.passphrase_file).read_text().rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {args.passphrase_file}: {exc.strerror}") from None
    else:
        text = settings.retired_key_passphrase
    if not text:
        raise ConfigError("--keep-retired needs a passphrase: --passphrase-file FILE or "
                          "$SEALTRAIL_RETIRED_KEY_PASSPHRASE (it is never kept in clear)")
    return text.encode("utf-8")


def _keys_rotate_hmac(args: argparse.Namespace) -> None:
    from sealtrail.keys import rotate_hmac_key

    settings = settings_from(args)
    with using(keys_location(settings), hint=keys_hint(settings)):
        old, new = rotate_hmac_key(settings.keys)
    print(f"HMAC key rotated: {old} -> {new}; new pseudonyms read hmac:{new}:...")


def _keys_export(args: argparse.Namespace) -> None:
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring

    settings = settings_from(args)
    with using(keys_location(settings), hint=keys_hint(settings)):
        keyring = load_keyring(settings.keys / PUBLIC_KEYRING)
    print_json(keyring.to_json())
