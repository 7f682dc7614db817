"""JSON from an untrusted file: bounded size, nesting and numbers."""

from __future__ import annotations

import json
from typing import Any

from sealtrail.errors import MalformedInputError

#: Nesting any sealtrail JSON document needs is under 16 (a proof: entry, event,
#: authorization, permissions); beyond this a document is refused before any code that
#: recurses over it runs.
MAX_DEPTH = 64


def depth_of(value: Any, limit: int) -> int:
    """The nesting depth of a decoded JSON value (a scalar is 0), counting no further than
    ``limit + 1`` (iterative: deep values cannot overflow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def load_json(data: bytes, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` as JSON, or MalformedInputError saying why it is not a usable ``what``:
    larger than ``max_bytes``, not UTF-8 JSON, a number too long to be one, or nested
    deeper than ``max_depth``."""
    if len(data) > max_bytes:
        raise MalformedInputError(f"{what} is {len(data)} bytes, more than {max_bytes}")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise MalformedInputError(f"{what} is nested too deeply to be one (JSON nesting "
                                  f"beyond {max_depth} levels)") from None
    except UnicodeDecodeError:
        raise MalformedInputError(f"{what} is not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4300 digits
        raise MalformedInputError(f"{what} is not JSON: {str(exc)[:200]}") from None
    if depth_of(doc, max_depth) > max_depth:
        raise MalformedInputError(f"{what} is nested too deeply to be one (JSON nesting "
                                  f"beyond {max_depth} levels)")
    return doc
