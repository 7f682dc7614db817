"""Reading what the offline checkers are given, before anything uses it (G10).

``verify-proof``, ``verify-note``, ``verify-export`` and ``verify`` take files that anyone
may have made: a truncated download, the wrong file, or something built to crash the
checker (JSON nested a million levels deep, a zip that inflates a thousandfold). Every
such file first goes through these functions, which bound its size, its nesting and,
for zips, what its members may inflate to, and check its structure and types. They raise
:class:`~sealtrail.errors.MalformedInputError` (the CLI exits 2: nothing was checked),
never anything else; whether the evidence in a well-formed file holds is the checkers'
job (exit 1 when it does not).
"""

from sealtrail.inputs._files import read_file
from sealtrail.inputs._json import MAX_DEPTH, depth_of, load_json
from sealtrail.inputs._shapes import ListOf, Shape, check_shape
from sealtrail.inputs._zip import BoundedZip, ZipLimits

__all__ = ["MAX_DEPTH", "BoundedZip", "ListOf", "Shape", "ZipLimits", "check_shape", "depth_of",
           "load_json", "read_file"]
