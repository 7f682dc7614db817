"""A zip archive from an untrusted file, read under caps.

Python's zipfile trusts a member's declared sizes only as far as it must: it stops
inflating at the declared size. So the declared sizes are checked first, against
:class:`ZipLimits` (members, bytes per member, bytes in all, inflation ratio, methods),
and then bound everything read. A 1 MB bomb that would inflate to gigabytes is refused
before one byte of it is inflated.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

from sealtrail.errors import MalformedInputError

__all__ = ["BoundedZip", "ZipLimits"]

_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may hold: ``members`` entries, each inflating to at most ``member_bytes``,
    all to at most ``total_bytes``, and a member over ``ratio_floor`` bytes to at most
    ``ratio`` times its compressed size."""

    members: int = 1_000_000
    member_bytes: int = 1024**3
    total_bytes: int = 4 * 1024**3
    ratio: int = 200
    ratio_floor: int = 1024 * 1024


class BoundedZip:
    """The members of a zip whose declared sizes keep within ``limits``."""

    def __init__(self, data: bytes, *, what: str, limits: ZipLimits | None = None) -> None:
        self.what = what
        self.limits = limits = limits or ZipLimits()
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise MalformedInputError(f"{what} is not a zip archive: {exc}") from None
        if len(infos) > limits.members:
            raise MalformedInputError(f"{what} has {len(infos)} members, at most "
                                      f"{limits.members}")
        self._infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            self._check(info)
            if info.filename in self._infos:
                raise MalformedInputError(f"{what} holds member {info.filename[:200]!r} twice")
            self._infos[info.filename] = info
            total += info.file_size
        if total > limits.total_bytes:
            raise MalformedInputError(f"{what} inflates to {total} bytes, more than "
                                      f"{limits.total_bytes}")

    def _check(self, info: zipfile.ZipInfo) -> None:
        name, limits = info.filename[:200], self.limits
        if info.compress_type not in _METHODS:
            raise MalformedInputError(f"{self.what}: member {name!r} uses compression method "
                                      f"{info.compress_type} (only stored and deflated)")
        if info.flag_bits & 0x1:
            raise MalformedInputError(f"{self.what}: member {name!r} is encrypted")
        if info.file_size > limits.member_bytes:
            raise MalformedInputError(f"{self.what}: member {name!r} inflates to "
                                      f"{info.file_size} bytes, more than {limits.member_bytes}")
        if (info.file_size > limits.ratio_floor
                and info.file_size > limits.ratio * max(info.compress_size, 1)):
            raise MalformedInputError(
                f"{self.what}: member {name!r} inflates {info.file_size} bytes from "
                f"{info.compress_size}, more than {limits.ratio} times (a zip bomb?)")

    def names(self) -> set[str]:
        return set(self._infos)

    def size(self, name: str) -> int:
        return self._infos[name].file_size

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """Member ``name`` whole, when it declares at most ``max_bytes``; KeyError when
        absent; MalformedInputError when larger or damaged."""
        info = self._infos[name]
        if info.file_size > max_bytes:
            raise MalformedInputError(f"{self.what}: member {name[:200]!r} is "
                                      f"{info.file_size} bytes, at most {max_bytes}")
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise MalformedInputError(f"{self.what}: member {name[:200]!r} does not "
                                      f"inflate: {exc}") from None

    def sha256(self, name: str) -> str:
        """Hex SHA-256 of member ``name``, inflated in pieces (never held whole)."""
        digest = hashlib.sha256()
        try:
            with self._zip.open(self._infos[name]) as member:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise MalformedInputError(f"{self.what}: member {name[:200]!r} does not "
                                      f"inflate: {exc}") from None
        return digest.hexdigest()
