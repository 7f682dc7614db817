"""Run the fuzz targets, each for a bounded time, each in its own process.

    python -m fuzz [TARGET ...] [--seconds 60] [--engine auto|atheris|hypothesis]

Targets: the names in fuzz.targets.TARGETS, and ``native`` (the C extensions under ASan and
UBSan, fuzz/native.py). The engine is atheris (coverage-guided libFuzzer) when it imports,
hypothesis byte strategies (random and mutated seeds) otherwise. Seeds come from the
regression corpus, tests/fuzz_corpus/<target>/; what a run adds to it stays in
.fuzz/<target>/; an input that breaks a target is written to .fuzz/findings/<target>/ and
the run exits 1. Prints one summary line per target.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz_corpus"
WORK = ROOT / ".fuzz"


def _engine(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


def _seed_inputs(target: str) -> list[bytes]:
    directory = CORPUS / target
    return [p.read_bytes() for p in sorted(directory.glob("*.bin"))] if directory.is_dir() else []


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits of ``data`` (flips, inserts, deletes, repeats)."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(4)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 2 and out:
            del out[at:at + rng.randrange(1, 17)]
        elif out:
            piece = out[at:at + rng.randrange(1, 9)]
            out[at:at] = piece * rng.randrange(1, 64)
    return bytes(out)


def hypothesis_pass(target: str, examples: int, seed: int) -> None:
    """``examples`` inputs through ``target``: random bytes and mutated seeds (hypothesis
    shrinks a failing one and raises it)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from fuzz.targets import TARGETS

    spec = TARGETS[target]
    seeds = _seed_inputs(target) or [b""]
    inputs = st.one_of(
        st.binary(max_size=min(spec.max_len, 512)),
        st.builds(lambda s, r: mutate(random.Random(r), s)[:spec.max_len],
                  st.sampled_from(seeds), st.integers(0, 2**32)))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(inputs)
    def check(data: bytes) -> None:
        spec.run(data)

    random.seed(seed)
    check()


def _child(target: str, seconds: float, engine: str) -> int:
    findings = WORK / "findings" / target
    findings.mkdir(parents=True, exist_ok=True)
    if engine == "atheris":
        import atheris

        from fuzz.targets import TARGETS, warm

        warm()
        # sealtrail is installed in editable mode, whose import finder atheris's import hook
        # does not see: instrument the loaded code instead.
        atheris.instrument_all()
        spec = TARGETS[target]
        spec.run(b"")  # build the fixtures before the clock starts
        work = WORK / target
        work.mkdir(parents=True, exist_ok=True)
        seeds = CORPUS / target
        argv = [sys.argv[0], str(work), *([str(seeds)] if seeds.is_dir() else []),
                f"-max_total_time={int(seconds)}", "-timeout=30", "-rss_limit_mb=4096",
                f"-max_len={spec.max_len}", f"-artifact_prefix={findings}/",
                "-print_final_stats=1"]
        atheris.Setup(argv, spec.run)
        atheris.Fuzz()
        return 0
    deadline, rounds = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            hypothesis_pass(target, 200, rounds)
        except Exception as exc:
            (findings / f"hypothesis-{rounds}.txt").write_text(f"{type(exc).__name__}: {exc}\n")
            raise
        rounds += 1
    print(f"hypothesis: {rounds * 200} inputs")
    return 0


def _summary(target: str, engine: str, proc: subprocess.CompletedProcess[str],
             seconds: float) -> str:
    text = proc.stdout + proc.stderr
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", text) or re.findall(
        r"(?:hypothesis|native): (\d+) inputs", text)
    status = "ok" if proc.returncode == 0 else f"FINDING (exit {proc.returncode})"
    return (f"{target:12} {engine:10} {seconds:6.0f} s  {runs[-1] if runs else '?':>9} "
            f"inputs  {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="default: all, native included")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    engine = _engine(args.engine)
    if args.child:  # before anything imports sealtrail: atheris instruments on import
        return _child(args.child, args.seconds, engine)
    from fuzz.targets import TARGETS

    names = args.targets or [*TARGETS, "native"]
    failed = 0
    for name in names:
        started = time.monotonic()
        if name == "native":
            from fuzz.native import run_sanitized

            proc = run_sanitized(args.seconds, WORK / "native")
            used = "asan+ubsan"
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "fuzz", "--child", name, "--seconds",
                 str(args.seconds), "--engine", engine], capture_output=True, text=True,
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                timeout=args.seconds + 900)
            used = engine
        print(_summary(name, used, proc, time.monotonic() - started), flush=True)
        if proc.returncode != 0:
            failed += 1
            sys.stderr.write(proc.stderr[-6000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
