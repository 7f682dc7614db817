"""The native segment reader (sealtrail/_canonical_avro.c) under AddressSanitizer and
UndefinedBehaviorSanitizer, in its own fuzz target.

It parses archive bytes an attacker may control, so it is built a second time, with
``gcc -fsanitize=address,undefined`` (clang and libFuzzer are not on the development
machines; atheris's libFuzzer cannot share a process with gcc's ASan runtime), and driven
from Python by a mutation fuzzer: real blocks of every schema shape the reader takes,
mutated (bit flips, bytes inserted and removed, varints of the edge values, counts that
lie), and malformed schema programs. Any memory error or undefined behaviour aborts the
process with the sanitizer's report; the input being run is always in ``last-input.bin``.

    python -m fuzz.native --seconds 60 [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import random
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sealtrail" / "_canonical_avro.c"
FLAGS = ["-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
EDGES = (0, 1, -1, 63, 64, -64, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63))


def sanitizer_runtime() -> str | None:
    """LD_PRELOAD for gcc's ASan and UBSan runtimes, or None when gcc lacks them."""
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        try:
            found = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                                   text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
        if not found or not Path(found).is_absolute() or not Path(found).exists():
            return None
        libs.append(found)
    return ":".join(libs)


def build(work: Path) -> Path | None:
    """The extension built with the sanitizers into ``work``; None without gcc or them."""
    work.mkdir(parents=True, exist_ok=True)
    target = work / ("_canonical_avro" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    if target.exists() and target.stat().st_mtime > SOURCE.stat().st_mtime:
        return target
    include = sysconfig.get_paths()["include"]
    try:
        done = subprocess.run(["gcc", *FLAGS, f"-I{include}", str(SOURCE), "-o", str(target)],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return target if done.returncode == 0 else None


def run_sanitized(seconds: float, work: Path, seed: int = 0) -> subprocess.CompletedProcess[str]:
    """Build, then fuzz for ``seconds`` in a child process under the sanitizers."""
    module = build(work)
    preload = sanitizer_runtime()
    if module is None or preload is None:
        raise RuntimeError("gcc with AddressSanitizer and UBSan is needed for the native "
                           "fuzz target")
    env = {**os.environ, "LD_PRELOAD": preload,
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    return subprocess.run(
        [sys.executable, "-m", "fuzz.native", "--child", str(module), "--seconds",
         str(seconds), "--work", str(work), "--seed", str(seed)],
        capture_output=True, text=True, timeout=seconds + 600, env=env, cwd=ROOT)


# -- the child: inputs and the loop ----------------------------------------------------------


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("_canonical_avro", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shapes() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(schema, records) pairs: every SealedRecord version with every AuditEvent version,
    and small schemas of every Avro type the reader takes."""
    from sealtrail import schemas

    sealed = []
    for sv in schemas.versions(schemas.SEALED_RECORD):
        for ev in schemas.versions(schemas.AUDIT_EVENT):
            sealed.append((schemas.sealed_record(ev, sv), []))
    every = {"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "null"}, {"name": "b", "type": "boolean"},
        {"name": "l", "type": "long"}, {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"}, {"name": "f", "type": {"type": "fixed", "name": "F",
                                                                "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "a", "type": {"type": "array", "items": ["null", "string"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {"name": "z", "type": {"type": "array", "items": "null"}},
        {"name": "r", "type": ["null", "R"]}]}
    value = {"n": None, "b": True, "l": -5, "s": "café\n", "y": b"\x00\xff", "f": b"abcd",
             "e": "B", "a": [None, "x"], "m": {"k": [1, 2], "j": []}, "z": [None, None],
             "r": {"n": None, "b": False, "l": 0, "s": "", "y": b"", "f": b"wxyz", "e": "A",
                   "a": [], "m": {}, "z": [], "r": None}}
    return [*sealed, (every, [value, value])]


def _block(schema: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    import fastavro

    from sealtrail.core.envelope import strip_logical_types

    parsed = fastavro.parse_schema(strip_logical_types(schema))
    buf = io.BytesIO()
    for record in records:
        fastavro.schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, z = z & 0x7F, z >> 7
        out.append(byte | (0x80 if z else 0))
        if not z:
            return bytes(out)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(5)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 2 and out:
            del out[at:at + rng.randrange(1, 9)]
        elif op == 3:
            out[at:at] = _zigzag(rng.choice(EDGES))
        else:
            out[at:at + 1] = _zigzag(rng.choice(EDGES))
    return bytes(out)


def child(module_path: Path, seconds: float, work: Path, seed: int) -> int:
    from sealtrail.archive import fast_segments
    from sealtrail.archive.segments import read_segment

    native = _load(module_path)
    fast_segments.native = native  # _compile takes the node constants from it
    rng = random.Random(seed)
    cases = []
    from fuzz.seeds import sealer_seed_segments

    for segment in sealer_seed_segments():
        schema_text = fast_segments.open_container(segment).schema_text
        program, seal, captures = fast_segments._program(schema_text)
        for count, block in fast_segments.open_container(segment).blocks:
            cases.append((program, seal, captures, block, count))
    for schema, records in _shapes():
        if records:
            program = native.compile(fast_segments._compile(schema))
            cases.append((program, (), ((0,),), _block(schema, records), len(records)))
    assert cases and read_segment  # (imported so that the reference path is warm too)
    last = work / "last-input.bin"
    runs = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        program, seal, captures, block, count = rng.choice(cases)
        data = mutate(rng, block)
        claimed = rng.choice((count, count, rng.randrange(0, 2 * count + 2), 2**31))
        last.write_bytes(data)
        try:
            native.transcode(program, data, claimed, seal, captures)
        except (ValueError, TypeError, OverflowError, MemoryError):
            errors += 1
        runs += 1
        if runs % 50 == 0:
            _malformed_program(native, rng)
    print(f"native: {runs} inputs in {seconds:.0f} s, {errors} refused, no sanitizer report")
    return 0


def _malformed_program(native: Any, rng: random.Random) -> None:
    """compile() on node lists that are wrong in every way Python can make them."""
    kinds = [*range(11), -1, 99, 2**40]
    nodes = []
    for _ in range(rng.randrange(1, 6)):
        kind = rng.choice(kinds)
        extra = rng.choice([(), (rng.randrange(-2, 8),), ((),), ((b'"k":', 0),),
                            (((b'"k":', rng.randrange(-1, 7)),), (0,)), ((0, 1, 9),)])
        nodes.append((kind, *extra))
    try:
        program = native.compile(nodes)
    except (ValueError, TypeError, OverflowError, MemoryError, IndexError):
        return
    with contextlib.suppress(ValueError, TypeError, OverflowError, MemoryError):
        native.transcode(program, rng.randbytes(rng.randrange(0, 64)), rng.randrange(4), (),
                         ())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--work", type=Path, default=ROOT / ".fuzz" / "native")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.seconds, args.work, args.seed)
    result = run_sanitized(args.seconds, args.work, args.seed)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr[-20000:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
