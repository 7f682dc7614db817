"""Stub of the native Avro codec (_avro_native.c); see avro_program.py."""

from collections.abc import Callable
from typing import Any

K_NULL: int
K_BOOL: int
K_INT: int
K_LONG: int
K_FLOAT: int
K_DOUBLE: int
K_STRING: int
K_BYTES: int
K_FIXED: int
K_ENUM: int
K_ARRAY: int
K_MAP: int
K_RECORD: int
K_UNION: int

def compile(nodes: list[tuple[Any, ...]], deepcopy: Callable[[Any], Any]) -> object: ...
def encode(program: object, value: Any) -> bytes: ...
def decode(program: object, data: bytes | memoryview) -> tuple[Any, int]: ...
def decode_many(program: object, data: bytes | memoryview, count: int) -> list[Any]: ...
