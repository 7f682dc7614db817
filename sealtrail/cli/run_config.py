"""Subcommand ``sealtrail config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import dataclasses

from sealtrail.cli.common import print_json, settings_from
from sealtrail.core.disclosure import MASK, mask_urls_in


def configure_config(p: argparse.ArgumentParser) -> None:
    p.description = ("Configuration: defaults, --config FILE / SEALTRAIL_CONFIG / "
                     "./sealtrail.toml, SEALTRAIL_* variables (docs/configuration.md). The "
                     "locations every command uses unless told otherwise: archive_url, "
                     "index_url, keys_dir.")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print every setting's effective value; secrets "
                              "(registry_auth and anything key-like) are masked")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.set_defaults(func=_show)


def masked(settings: object) -> dict[str, str]:
    """Every field as text, secrets replaced by a mask (empty secrets stay empty)."""
    from sealtrail.config_doc import is_secret

    out = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = str(getattr(settings, f.name))
        if value and is_secret(f.name):
            value = MASK
        # URLs anywhere in a value: userinfo passwords and password-like query parameters
        # (postgresql://u:p@h/db, ...?sslpassword=..., ...&X-Amz-Signature=...).
        out[f.name] = mask_urls_in(value)
    return out


def _show(args: argparse.Namespace) -> None:
    values = masked(settings_from(args).with_stack())
    if args.json:
        print_json(values)
    else:
        width = max(map(len, values))
        for name, value in values.items():
            print(f"{name:<{width}}  {value}")
