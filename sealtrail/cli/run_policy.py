"""``sealtrail policy check``: validate a redaction policy file."""

from __future__ import annotations

import argparse

from sealtrail.cli.common import settings_from


def configure_policy(p: argparse.ArgumentParser) -> None:
    p.description = ("Redaction policies (docs/redaction.md): the file the policy_file setting "
                     "names, else the shipped default.")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    k = psub.add_parser("check", help="check a policy file; print what each rule does")
    k.add_argument("file", nargs="?", help="policy YAML (default: the configured policy)")
    k.set_defaults(func=_policy_check)


def _policy_check(args: argparse.Namespace) -> None:
    from sealtrail.policy import load_policy

    settings = settings_from(args)
    path = args.file or settings.policy_file or None
    policy = load_policy(path, None, check_only=True)
    print(f"policy {policy.policy_id} v{policy.version} ({path or 'shipped default'}): "
          f"{len(policy.rules)} rules, unknown attributes: {policy.unknown_attributes}, "
          f"subject field: {policy.subject_field}")
    for rule in policy.rules:
        scope = ", ".join(sorted(rule.event_types)) or "all event types"
        print(f"  {rule.selector:28} {rule.action:12} ({scope}): {rule.describe()}")
    print("OK: per field and per attribute key, the first rule that selects it and applies "
          "to the event's type wins; detectors look at what no rule changed")
