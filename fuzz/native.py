"""The C extensions under AddressSanitizer and UndefinedBehaviorSanitizer, in one fuzz
target: the segment reader (sealtrail/_canonical_avro.c: archive bytes), the Avro codec
(sealtrail/core/_avro_native.c: raw records from the raw topic, sealed records, segment
blocks) and the canonical JSON encoder (sealtrail/core/_canonical_native.c).

They take bytes and values an attacker may control, so each is built a second time, with
``gcc -fsanitize=address,undefined`` (clang and libFuzzer are not on the development
machines; atheris's libFuzzer cannot share a process with gcc's ASan runtime), and driven
from Python by a mutation fuzzer: real blocks and records of every schema shape the
readers take, mutated (bit flips, bytes inserted and removed, varints of the edge values,
counts that lie), malformed schema programs, values of the wrong types for the encoder,
and odd values for canonical JSON (whose every answer must also equal the Python
reference's). Any memory error or undefined behaviour aborts the process with the
sanitizer's report; the input being run is always in ``last-input.bin``.

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

from fuzz.seeds import zigzag

ROOT = Path(__file__).resolve().parent.parent
#: module name -> its C source, each built with the sanitizers into the work directory.
SOURCES = {
    "_canonical_avro": ROOT / "sealtrail" / "_canonical_avro.c",
    "_avro_native": ROOT / "sealtrail" / "core" / "_avro_native.c",
    "_canonical_native": ROOT / "sealtrail" / "core" / "_canonical_native.c",
}
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


def build(work: Path) -> bool:
    """Every module of SOURCES built with the sanitizers into ``work``; False without gcc
    or them."""
    work.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    for name, source in SOURCES.items():
        target = work / (name + str(sysconfig.get_config_var("EXT_SUFFIX")))
        if target.exists() and target.stat().st_mtime > source.stat().st_mtime:
            continue
        try:
            done = subprocess.run(["gcc", *FLAGS, f"-I{include}", str(source), "-o",
                                   str(target)], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode != 0:
            return False
    return True


def run_sanitized(seconds: float, work: Path, seed: int = 0) -> subprocess.CompletedProcess[str]:
    """Build, then fuzz for ``seconds`` in a child process under the sanitizers."""
    preload = sanitizer_runtime()
    if preload is None or not build(work):
        raise RuntimeError("gcc with AddressSanitizer and UBSan is needed for the native "
                           "fuzz target")
    env = {**os.environ, "LD_PRELOAD": preload,
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    return subprocess.run(
        [sys.executable, "-m", "fuzz.native", "--child", "--seconds",
         str(seconds), "--work", str(work), "--seed", str(seed)],
        capture_output=True, text=True, timeout=seconds + 600, env=env, cwd=ROOT)


# -- the child: inputs and the loop ----------------------------------------------------------


def _load(work: Path, name: str) -> Any:
    """The sanitized build of module ``name`` from ``work``."""
    path = work / (name + str(sysconfig.get_config_var("EXT_SUFFIX")))
    spec = importlib.util.spec_from_file_location(name, path)
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
            out[at:at] = zigzag(rng.choice(EDGES))
        else:
            out[at:at + 1] = zigzag(rng.choice(EDGES))
    return bytes(out)


def _avro_cases() -> list[tuple[Any, Any, bytes, Any]]:
    """(decoder, encoder, Avro binary of a value, the value) of every AuditEvent version read
    as the newest (what the sealer decodes from the raw topic), the SealedRecord, and a
    schema of every type the codec takes, read with a field dropped and one defaulted."""
    import fastavro

    from fuzz.seeds import sealer_seed_segments
    from fuzz.targets import _event
    from sealtrail import schemas
    from sealtrail.archive.segments import read_segment
    from sealtrail.core import avro_program
    from sealtrail.core.envelope import strip_logical_types

    def binary(schema: Any, value: Any) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
        return buf.getvalue()

    pairs = []
    newest = strip_logical_types(schemas.load(schemas.AUDIT_EVENT))
    for version in schemas.versions(schemas.AUDIT_EVENT):
        writer = strip_logical_types(schemas.load(schemas.AUDIT_EVENT, version))
        event = _event()
        for field in writer["fields"]:
            event.setdefault(field["name"], field.get("default"))
        pairs.append((writer, newest, event))
    every: list[dict[str, Any]] = [
        {"name": "n", "type": "null"}, {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"}, {"name": "l", "type": "long"},
        {"name": "x", "type": "float"}, {"name": "d", "type": "double"},
        {"name": "s", "type": "string"}, {"name": "y", "type": "bytes"},
        {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "a", "type": {"type": "array", "items": ["null", "string", "long"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {"name": "z", "type": {"type": "array", "items": "null"}},
        {"name": "r", "type": ["null", {"type": "record", "name": "Inner", "fields": [
            {"name": "k", "type": "string"}, {"name": "v", "type": "bytes"}]}]}]
    value = {"n": None, "b": True, "i": -7, "l": 2**40, "x": 1.5, "d": -0.25, "s": "café\n",
             "y": b"\x00\xff", "f": b"abcd", "e": "B", "a": [None, "x", 3],
             "m": {"k": [1, 2], "j": []}, "z": [None, None], "r": {"k": "q", "v": b"w"}}
    writer = {"type": "record", "name": "R", "fields": every}
    pairs.append((writer, writer, value))
    reader = {"type": "record", "name": "R", "fields": [
        *every[1:], {"name": "added", "type": "long", "default": 7}]}
    pairs.append((writer, reader, value))
    sealed = strip_logical_types(schemas.sealed_record())
    pairs.append((sealed, sealed, read_segment(sealer_seed_segments()[0])[0]))  # as sealed
    cases = []
    for w, r, v in pairs:
        decoder = avro_program.decoder_for(w, r, resolving=w != r)
        encoder = avro_program.encoder_for(w)
        assert decoder is not None and encoder is not None, w.get("name")
        cases.append((decoder, encoder, binary(w, v), v))
    return cases


ODD = (None, True, 0, -1, 2**63, -(2**63) - 1, 2**70, 1.5, float("nan"), "", "\ud800", "é",
       b"", b"\xff", [], {}, (), {"k": None}, [None], object())


def _odd_value(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one part somewhere replaced by a value of another type or an edge."""
    if isinstance(value, dict) and value and depth < 8:
        key = rng.choice(list(value))
        return {**value, key: _odd_value(rng, value[key], depth + 1)}
    if isinstance(value, list) and value and depth < 8:
        at = rng.randrange(len(value))
        return [*value[:at], _odd_value(rng, value[at], depth + 1), *value[at + 1:]]
    return rng.choice(ODD)


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    """A value for canonical JSON: mostly what it takes, sometimes what it refuses, now and
    then nested past its depth limit."""
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        if rng.random() < 0.05:
            deep: Any = "x"
            for _ in range(rng.choice((99, 100, 101, 500))):
                deep = [deep] if rng.random() < 0.5 else {"k": deep}
            return deep
        return rng.choice((*ODD[:8], *ODD[9:19], "a\"b\\c\x00\x1f\u2028", "ü" * 40, 10**30))
    if roll < 0.75:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["b", "a", "é", "\x00", "aa", "B", "😀", "\uffff"]
    return {rng.choice(keys) if rng.random() < 0.95 else rng.choice((1, None, b"k")):
            _json_value(rng, depth + 1) for _ in range(rng.randrange(6))}


def child(seconds: float, work: Path, seed: int) -> int:
    from sealtrail.archive import fast_segments
    from sealtrail.core import avro_program, canonical

    segments = _load(work, "_canonical_avro")
    fast_segments.native = segments  # _compile takes the node constants from it
    avro_program.native = _load(work, "_avro_native")  # decoder_for / encoder_for use it
    canonical_json = _load(work, "_canonical_native").canonical_json
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
            program = segments.compile(fast_segments._compile(schema))
            cases.append((program, (), ((0,),), _block(schema, records), len(records)))
    avro = _avro_cases()
    assert cases and avro
    last = work / "last-input.bin"
    runs = errors = answered = 0  # runs: calls into the C code
    jobs = [0, 0, 0]  # inputs for the segment reader, the Avro codec, canonical JSON
    cycle = (0, 0, 1, 2)  # the segment reader gets half of them
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = cycle[sum(jobs) % len(cycle)]
        jobs[job] += 1
        if job == 0:
            program, seal, captures, block, count = rng.choice(cases)
            data = mutate(rng, block)
            claimed = rng.choice((count, count, rng.randrange(0, 2 * count + 2), 2**31))
            last.write_bytes(data)
            try:
                segments.transcode(program, data, claimed, seal, captures)
            except (ValueError, TypeError, OverflowError, MemoryError):
                errors += 1
            runs += 1
        elif job == 1:
            decoder, encoder, body, value = rng.choice(avro)
            copies = rng.randrange(1, 4)
            data = mutate(rng, body * copies)
            last.write_bytes(data)
            errors += decoder(data) is None
            errors += decoder.many(data, rng.choice((copies, copies, 0, 2**31, -1))) is None
            odd = _odd_value(rng, value)
            last.write_bytes(repr(odd).encode("utf-8", "replace"))
            try:
                errors += encoder(odd) is None
            except (TypeError, OverflowError, MemoryError):
                errors += 1
            runs += 3
        else:  # any answer of canonical JSON is the reference's
            value = _json_value(rng)
            last.write_bytes(repr(value).encode("utf-8", "replace"))
            try:
                found = canonical_json(value)
            except ValueError:
                errors += 1
            else:
                answered += 1
                expected = canonical.reference_canonical_json(value)
                assert found == expected, (value, found, expected)
            runs += 1
        if job == 0 and jobs[0] % 50 == 0:
            _malformed_program(segments, rng)
    print(f"native: {runs} inputs in {seconds:.0f} s, {errors} refused, no sanitizer report "
          f"(segment reader {jobs[0]}, Avro codec {jobs[1]}, canonical JSON {jobs[2]}: "
          f"{answered} answered, each equal to the reference)")
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.seconds, args.work, args.seed)
    result = run_sanitized(args.seconds, args.work, args.seed)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr[-20000:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
