"""Test helpers, importable as ``helpers.<module>`` (pyproject's pytest ``pythonpath``).

Archive builders, fakes and probes shared by tests/unit and tests/integration; fixtures
live in tests/conftest.py."""
