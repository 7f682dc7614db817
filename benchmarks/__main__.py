"""`python -m benchmarks [NAME ...]`: run every benchmarks/bench_*.py (or the named ones)
and print one `name: value` line per figure."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or n.removeprefix("bench_") in argv or n in argv]
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"# {name}", flush=True)
        for key, value in module.run().items():
            print(f"{key}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
