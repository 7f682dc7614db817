"""Benchmarks run by `make bench`. Each module ``bench_*.py`` defines ``run() -> dict``
of ``name: value`` figures; every figure is a ratio against a baseline measured in the
same run, or a raw figure printed beside its baseline."""
