"""Fuzzing in the suite (G10): the regression corpus (every hostile input we know of,
and whatever fuzzing found) through every target, a short hypothesis pass of each,
and a short run of the C extensions under AddressSanitizer and UBSan. `make fuzz` runs
the long passes (docs/fuzzing.md)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

ROOT = REPO
sys.path.insert(0, str(ROOT))  # the fuzz/ harnesses live beside the package, like benchmarks/

from fuzz import native  # noqa: E402
from fuzz.__main__ import hypothesis_pass  # noqa: E402
from fuzz.targets import TARGETS, raw_value, sealer_rig  # noqa: E402

CORPUS = ROOT / "tests" / "fuzz_corpus"
CASES = sorted((t, p) for t in TARGETS for p in (CORPUS / t).glob("*.bin"))


def test_the_corpus_covers_every_target_and_the_issue_inputs() -> None:
    names = {(t, p.stem) for t, p in CASES}
    assert {t for t, _ in names} == set(TARGETS)
    assert {("seal_value", "issue-schema-id-4294967295"), ("seal_value", "issue-array-poison"),
            ("proof", "issue-deeply-nested"), ("export", "issue-manifest-is-a-list"),
            ("export", "zip-bomb")} <= names


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.stem}" for t, p in CASES])
def test_regression_corpus(target: str, path: Path) -> None:
    """Each stored input keeps every invariant of its target."""
    TARGETS[target].run(path.read_bytes())


def test_the_issue_records_are_sealed_with_their_reasons() -> None:
    """The two raw records that once broke the sealer, through the real sealer:
    UNKNOWN_SCHEMA keeping the unsigned id, and LIMIT for the array poison record."""
    from sealtrail.core.chain import ChainHead
    from sealtrail.pipeline.recovery import ChainState

    rig = sealer_rig()
    reasons = {}
    for name in ("issue-schema-id-4294967295", "issue-array-poison"):
        value = raw_value((CORPUS / "seal_value" / f"{name}.bin").read_bytes())
        state = ChainState(ChainHead.genesis("raw.0.t"), 0)
        _, record, rejected = rig.sealer.seal_value(state, value, "raw", 0, 0)
        assert rejected is not None
        reasons[name] = (rejected.reason, record["source"]["schema_id"])
    assert reasons == {"issue-schema-id-4294967295": ("UNKNOWN_SCHEMA", 2**32 - 1),
                       "issue-array-poison": ("LIMIT", rig.ids[1])}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_hypothesis_pass(target: str) -> None:
    """A bounded pass of random and mutated inputs per target (the long ones: make fuzz)."""
    hypothesis_pass(target, 150, 13)


def test_native_code_under_asan_and_ubsan(tmp_path: Path) -> None:
    """The three C extensions (segment reader, Avro codec, canonical JSON) built with
    -fsanitize=address,undefined, fuzzed for 10 s: no sanitizer report (the child aborts
    with one on any memory error or UB), and each reached; every canonical JSON answer
    equals the Python reference's (the child asserts it)."""
    if native.sanitizer_runtime() is None:
        pytest.skip("gcc with libasan and libubsan is not installed: the native reader is "
                    "fuzzed under the sanitizers only where they are")
    result = native.run_sanitized(10, tmp_path / "native")
    assert result.returncode == 0, result.stderr[-6000:]
    assert "no sanitizer report" in result.stdout
    reached = re.search(r"segment reader (\d+), Avro codec (\d+), canonical JSON (\d+): "
                        r"(\d+) answered", result.stdout)
    assert reached and all(int(n) > 0 for n in reached.groups()), result.stdout
    assert "ERROR: AddressSanitizer" not in result.stderr
    assert "runtime error" not in result.stderr
