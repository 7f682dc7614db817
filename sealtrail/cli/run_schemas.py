"""``sealtrail schemas``: check the shipped schema versions, publish them to a registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sealtrail.cli.common import print_json, settings_from
from sealtrail.errors import ConfigError, VerificationFailedError


def configure_schemas(p: argparse.ArgumentParser) -> None:
    p.description = ("The Avro schemas in schemas/avro, every version of each. See "
                     "docs/schemas.md.")
    ssub = p.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    c = ssub.add_parser(
        "check", help="fail when a version breaks its subject's compatibility level",
        description="Check every version in schemas/ against the versions before it at the "
        "schema's level (AuditEvent and SealedRecord: FULL_TRANSITIVE), with the registry's "
        "own compatibility code, and that no version uses float or double. Each failure "
        "names the schema versions, the level, the rule and the field. Exit 0 when all "
        "versions pass, 1 when any fails, 2 when a file cannot be read.",
    )
    c.add_argument("--dir", type=Path, default=None,
                   help="directory of <Name>.v<N>.avsc files (default: the shipped schemas)")
    c.add_argument("--json", action="store_true", help="machine-readable report")
    c.set_defaults(func=_check)

    r = ssub.add_parser(
        "register", help="publish schemas/ to a schema registry",
        description="Check the schemas, then set each subject's compatibility level and "
        "register every version, oldest first: AuditEvent under <raw_topic>-value and "
        "SealedRecord (AuditEvent inlined) under <sealed_topic>-value. Idempotent. Exit 1 "
        "when a version fails the check or the registry refuses it as incompatible.",
    )
    r.add_argument("--registry", metavar="URL", default=None,
                   help="registry URL (default: SEALTRAIL_REGISTRY_URL or the embedded stack); "
                   "credentials come from SEALTRAIL_REGISTRY_AUTH")
    r.add_argument("--dir", type=Path, default=None, help="as for `schemas check`")
    r.add_argument("--no-level", action="store_true",
                   help="leave the subjects' compatibility levels as the registry has them")
    r.add_argument("--json", action="store_true", help="machine-readable report")
    r.set_defaults(func=_register)


def _check(args: argparse.Namespace) -> None:
    from sealtrail.schemas import check as schema_check

    directory = args.dir or schema_check.default_dir()
    problems = schema_check.check_dir(directory)
    found = schema_check.load_dir(directory)
    if args.json:
        print_json({"ok": not problems, "schemas": {n: sorted(v) for n, v in found.items()},
                    "violations": [str(p) for p in problems]})
    elif problems:
        for problem in problems:
            print(f"sealtrail: {problem}", file=sys.stderr)
    else:
        for subject in schema_check.subjects(found):
            labels = ", ".join(label for label, _ in subject.versions)
            print(f"ok  {subject.name} keeps {subject.level}: {labels}")
    if problems:
        raise VerificationFailedError(f"{len(problems)} compatibility problem(s) in "
                                      f"{directory}")


def _register(args: argparse.Namespace) -> None:
    from sealtrail.schemas import check as schema_check
    from sealtrail.schemas.publish import IncompatibleSchemaError, publish
    from sealtrail.schemas.registry_client import registry_client, safe_url

    settings = settings_from(args)
    url = args.registry or settings.with_stack().registry_url
    if not url:
        raise ConfigError("no schema registry: pass --registry URL, set SEALTRAIL_REGISTRY_URL, "
                          "or start the embedded stack with `sealtrail dev up`")
    problems = schema_check.check_dir(args.dir)
    if problems:
        for problem in problems:
            print(f"sealtrail: {problem}", file=sys.stderr)
        raise VerificationFailedError("not publishing: fix the schemas first (`sealtrail "
                                      "schemas check`)")
    plan = schema_check.registration_plan(
        f"{settings.raw_topic}-value", f"{settings.sealed_topic}-value", args.dir)
    client = registry_client(url, settings.registry_auth)
    try:
        published = publish(client, plan, set_level=not args.no_level)
    except IncompatibleSchemaError as exc:  # the registry's check failed: evidence, exit 1
        raise VerificationFailedError(str(exc)) from exc
    if args.json:
        print_json({"registry": safe_url(url), "published": [p.to_json() for p in published]})
    else:
        for p in published:
            print(f"{p.subject}  version {p.version}  id {p.schema_id}  ({p.label})")
