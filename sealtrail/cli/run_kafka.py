"""``sealtrail kafka``: Apache Kafka chores: the pipeline's ACLs, and fetching the broker
that `dev up --broker kafka` runs."""

from __future__ import annotations

import argparse

from sealtrail.cli.common import print_json, settings_from


def configure_kafka(p: argparse.ArgumentParser) -> None:
    p.description = ("Least privilege on Apache Kafka (docs/operations.md): one principal per "
                     "stage, each allowed only what its job needs.")
    actions = p.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)
    acls = actions.add_parser(
        "acls", help="print or apply the ACLs of every sealtrail principal",
        description="The ACLs derive from the configured topic and group names. --apply "
        "creates them through the AdminClient as the configured user, who must be allowed "
        "to alter ACLs (a super user); on a `dev up --secure` stack that is its admin.")
    what = acls.add_mutually_exclusive_group(required=True)
    what.add_argument("--print", action="store_true", dest="print_",
                      help="print them, one per line (--json: a list of objects)")
    what.add_argument("--apply", action="store_true", help="create them on the broker")
    acls.add_argument("--json", action="store_true")
    acls.set_defaults(func=_acls)
    fetch = actions.add_parser(
        "fetch", help="fetch Apache Kafka's jars from Maven Central into the cache",
        description="What `dev up --broker kafka` does first: `mvn dependency:copy-dependencies` "
        "into ~/.cache/sealtrail/kafka-<version> (SEALTRAIL_KAFKA_CACHE overrides); "
        "instant when already cached.")
    fetch.set_defaults(func=_fetch)


def _acls(args: argparse.Namespace) -> None:
    from sealtrail.kafka.acls import apply_acls, as_user
    from sealtrail.kafka.principals import acls_for
    from sealtrail.runtime import dev

    settings = settings_from(args).with_stack()
    acls = acls_for(settings)
    if args.print_:
        if args.json:
            print_json([a.__dict__ for a in acls])
        else:
            print("\n".join(str(a) for a in acls))
        return
    stack = dev.running_stack(settings.home)
    admin = settings
    if stack is not None and stack.users_file and settings.kafka_sasl_username == "tools":
        admin = as_user(settings, stack.users_file, "admin")  # the dev stack's super user
    count = apply_acls(admin, acls)
    print(f"{count} ACLs applied on {settings.bootstrap} as "
          f"{admin.kafka_sasl_username or 'an unauthenticated client'}")


def _fetch(args: argparse.Namespace) -> None:
    from sealtrail.kafka._fetch import fetch_kafka

    runtime = fetch_kafka()
    print(f"Apache Kafka {runtime.version}: {runtime.libs}")
