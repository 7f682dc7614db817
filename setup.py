"""Only the native accelerator lives here; everything else is in pyproject.toml.

``sealtrail._canonical_avro`` speeds up reading segments (sealtrail/fast_segments.py). It is
optional: without a C compiler the build skips it and sealtrail uses the Python path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sealtrail._canonical_avro", ["sealtrail/_canonical_avro.c"],
                             extra_compile_args=["-O2"], optional=True)])
