"""Fuzz targets for what an attacker controls: raw records through the sealer's
per-record path, segment files on both reader paths, checkpoints, notes, proofs, export
bundles, registry requests, and the native segment reader built with AddressSanitizer
and UndefinedBehaviorSanitizer.

Each target takes bytes and raises ``Finding`` (or any unexpected exception) when an
invariant breaks. ``python -m fuzz`` runs them with atheris where it is installed
(coverage-guided, ``pip install '.[fuzz]'``) and with hypothesis byte strategies
otherwise; ``tests/test_fuzz.py`` replays the regression corpus in
``tests/fuzz_corpus/<target>/`` and runs a short pass of each in ``make test``. What ran,
for how long and what it found is in docs/fuzzing.md.
"""
