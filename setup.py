"""Only the native accelerators live here; everything else is in pyproject.toml.

``sealtrail._canonical_avro`` speeds up reading segments (sealtrail/archive/fast_segments.py);
``sealtrail.core._avro_native`` encodes and decodes Avro records of compiled schemas
(sealtrail/core/avro_program.py) and ``sealtrail.core._canonical_native`` writes canonical
JSON (sealtrail/core/canonical.py), for the sealer's hot path. They are optional: without
a C compiler the build skips them and sealtrail uses the Python path (fastavro, json).
"""

from setuptools import Extension, setup


def _native(name: str, source: str) -> Extension:
    return Extension(name, [source], extra_compile_args=["-O2"], optional=True)


setup(ext_modules=[
    _native("sealtrail._canonical_avro", "sealtrail/_canonical_avro.c"),
    _native("sealtrail.core._avro_native", "sealtrail/core/_avro_native.c"),
    _native("sealtrail.core._canonical_native", "sealtrail/core/_canonical_native.c"),
])
