"""HTTP front end: the Confluent Schema Registry REST API on ``http.server``."""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sealtrail.registry._requests import RegistryError
from sealtrail.registry._store import Registry

log = logging.getLogger("sealtrail.registry")

MAX_BODY = 1024 * 1024  # request bodies above 1 MiB are refused with 413
_DRAIN_LIMIT = 8 * MAX_BODY  # oversize bodies up to this size are read and discarded first
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class _Raw(str):
    """A response that is already JSON text (e.g. a schema served as-is)."""


Query = dict[str, str]
Route = Callable[["RegistryHandler", Query, Any, list[str]], Any]


def _flag(query: Query, name: str) -> bool:
    return query.get(name, "").strip().lower() == "true"


def _schema_id(raw: str) -> int:
    """A schema id from a path: an unsigned 32-bit number (the wire header's), else 404."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= 2**32 - 1):
        raise RegistryError(404, 40403, f"Schema {raw[:64]} not found")
    return int(raw)


def _usages(h: RegistryHandler, q: Query, raw_id: str) -> list[tuple[str, int]]:
    return h.registry.schema_usages(_schema_id(raw_id), _flag(q, "deleted"))


def _subjects(h: RegistryHandler, q: Query, _b: Any, _a: list[str]) -> Any:
    return h.registry.subjects(
        q.get("subjectPrefix", ""), _flag(q, "deleted"), _flag(q, "deleted_only")
    )


def _referenced_by(h: RegistryHandler, subject: str, version: str) -> list[int]:
    h.registry.get_version(subject, version, True)  # 404s as Confluent does
    return []  # schema references are not supported, so nothing refers to anything


def _get_setting(key: str, out: str) -> Route:
    def route(h: RegistryHandler, q: Query, _b: Any, a: list[str]) -> Any:
        subject = a[0] if a else None
        return {out: h.registry.get_setting(subject, key, _flag(q, "defaultToGlobal"))}

    return route


def _put_setting(key: str) -> Route:
    def route(h: RegistryHandler, _q: Query, body: Any, a: list[str]) -> Any:
        if not isinstance(body, dict):
            raise RegistryError(422, 422, "Request body must be a JSON object")
        raw = body.get(key)
        if raw is None and key == "compatibility":
            raw = body.get("compatibilityLevel")
        return {key: h.registry.set_setting(a[0] if a else None, key, raw)}

    return route


def _delete_setting(key: str, out: str) -> Route:
    def route(h: RegistryHandler, _q: Query, _b: Any, a: list[str]) -> Any:
        return {out: h.registry.delete_setting(a[0] if a else None, key)}

    return route


# (method, path pattern with "*" for a captured segment, handler)
ROUTES: list[tuple[str, tuple[str, ...], Route]] = [
    ("GET", (), lambda h, q, b, a: {}),
    ("GET", ("schemas", "types"), lambda h, q, b, a: ["AVRO"]),
    ("GET", ("schemas", "ids", "*"), lambda h, q, b, a: h.registry.schema_by_id(_schema_id(a[0]))),
    (
        "GET",
        ("schemas", "ids", "*", "schema"),
        lambda h, q, b, a: _Raw(h.registry.schema_by_id(_schema_id(a[0]))["schema"]),
    ),
    (
        "GET",
        ("schemas", "ids", "*", "versions"),
        lambda h, q, b, a: [{"subject": s, "version": v} for s, v in _usages(h, q, a[0])],
    ),
    (
        "GET",
        ("schemas", "ids", "*", "subjects"),
        lambda h, q, b, a: sorted({s for s, _ in _usages(h, q, a[0])}),
    ),
    ("GET", ("subjects",), _subjects),
    ("POST", ("subjects", "*"), lambda h, q, b, a: h.registry.lookup(a[0], b, _flag(q, "deleted"))),
    (
        "DELETE",
        ("subjects", "*"),
        lambda h, q, b, a: h.registry.delete_subject(a[0], _flag(q, "permanent")),
    ),
    (
        "GET",
        ("subjects", "*", "versions"),
        lambda h, q, b, a: h.registry.versions(a[0], _flag(q, "deleted"), _flag(q, "deleted_only")),
    ),
    ("POST", ("subjects", "*", "versions"), lambda h, q, b, a: h.registry.register(a[0], b)),
    (
        "GET",
        ("subjects", "*", "versions", "*"),
        lambda h, q, b, a: h.registry.get_version(a[0], a[1], _flag(q, "deleted")),
    ),
    (
        "GET",
        ("subjects", "*", "versions", "*", "schema"),
        lambda h, q, b, a: _Raw(h.registry.get_version(a[0], a[1], _flag(q, "deleted"))["schema"]),
    ),
    (
        "GET",
        ("subjects", "*", "versions", "*", "referencedby"),
        lambda h, q, b, a: _referenced_by(h, a[0], a[1]),
    ),
    (
        "DELETE",
        ("subjects", "*", "versions", "*"),
        lambda h, q, b, a: h.registry.delete_version(a[0], a[1], _flag(q, "permanent")),
    ),
    (
        "POST",
        ("compatibility", "subjects", "*", "versions"),
        lambda h, q, b, a: h.registry.test_compatibility(a[0], None, b, _flag(q, "verbose")),
    ),
    (
        "POST",
        ("compatibility", "subjects", "*", "versions", "*"),
        lambda h, q, b, a: h.registry.test_compatibility(a[0], a[1], b, _flag(q, "verbose")),
    ),
    ("GET", ("config",), _get_setting("compatibility", "compatibilityLevel")),
    ("GET", ("config", "*"), _get_setting("compatibility", "compatibilityLevel")),
    ("PUT", ("config",), _put_setting("compatibility")),
    ("PUT", ("config", "*"), _put_setting("compatibility")),
    ("DELETE", ("config",), _delete_setting("compatibility", "compatibilityLevel")),
    ("DELETE", ("config", "*"), _delete_setting("compatibility", "compatibilityLevel")),
    ("GET", ("mode",), _get_setting("mode", "mode")),
    ("GET", ("mode", "*"), _get_setting("mode", "mode")),
    ("PUT", ("mode",), _put_setting("mode")),
    ("PUT", ("mode", "*"), _put_setting("mode")),
    ("DELETE", ("mode", "*"), _delete_setting("mode", "mode")),
]
_BODY_METHODS = {"POST", "PUT"}


def _match(pattern: tuple[str, ...], segments: list[str]) -> list[str] | None:
    if len(pattern) != len(segments):
        return None
    args = []
    for want, got in zip(pattern, segments, strict=True):
        if want == "*":
            if not got:
                return None
            args.append(got)
        elif want != got:
            return None
    return args


def _parse_json(data: bytes) -> Any:
    if not data.strip():
        raise RegistryError(422, 422, "Request body is empty; a JSON object is required")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(400, 400, f"Malformed JSON body: {exc}") from None


def expected_authorization(credentials: str) -> str | None:
    """The ``Authorization`` header value that ``credentials`` require: ``user:password`` is
    HTTP basic auth, ``Bearer <token>`` a bearer token, empty means no authentication."""
    if not credentials:
        return None
    if credentials[:7].lower() == "bearer ":
        token = credentials[7:].strip()
        if not token:
            raise ValueError("registry credentials: 'Bearer' needs a token")
        return f"Bearer {token}"
    if ":" not in credentials:
        raise ValueError("registry credentials must be 'user:password' or 'Bearer <token>'")
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


class RegistryHandler(BaseHTTPRequestHandler):
    """Request handler; ``registry`` and ``authorization`` are set on a per-server subclass."""

    registry: Registry
    authorization: str | None = None  # the required Authorization header value, if any
    protocol_version = "HTTP/1.1"
    server_version = "sealtrail-registry"
    timeout = 10.0  # socket timeout: a stalled client cannot hold a thread forever
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            path = parts.path.strip("/")
            segments = [unquote(s) for s in path.split("/")] if path else []
            route, args, path_known = None, None, False
            for m, pattern, fn in ROUTES:
                got = _match(pattern, segments)
                if got is not None:
                    path_known = True
                    if m == method:
                        route, args = fn, got
                        break
            self._authenticate()  # right after the headers: no body is read for a stranger
            raw = self._read_body()
            if route is None or args is None:
                if path_known:
                    raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")
                raise RegistryError(404, 404, "HTTP 404 Not Found")
            body = _parse_json(raw) if method in _BODY_METHODS else None
            self._reply(200, route(self, query, body, args))
        except RegistryError as exc:
            self._reply(exc.status, {"error_code": exc.code, "message": exc.message})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("registry: internal error on %s %s", method, self.path)
            self._reply(500, {"error_code": 50001, "message": "Internal error in the registry"})

    def _authenticate(self) -> None:
        """401 unless the request carries the configured credentials (constant-time compare)."""
        if self.authorization is None:
            return
        given = (self.headers.get("Authorization") or "").strip().encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.authorization.encode("utf-8")):
            if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # its body is left unread
            raise RegistryError(401, 40101, "Unauthorized: missing or wrong credentials")

    def _read_body(self) -> bytes:
        """Read the request body (at most ``MAX_BODY`` bytes, else 413)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RegistryError(411, 411, "Chunked request bodies are not supported")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise RegistryError(400, 400, "Invalid Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise RegistryError(400, 400, "Invalid Content-Length")
        if length > MAX_BODY:
            self.close_connection = True
            if length <= _DRAIN_LIMIT:  # let the client finish sending so it sees our answer
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise RegistryError(
                413, 413, f"Request body of {length} bytes exceeds the {MAX_BODY}-byte limit"
            )
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            self.close_connection = True
            raise RegistryError(400, 400, "Request body shorter than Content-Length")
        return data

    def _reply(self, status: int, payload: Any) -> None:
        text = payload if isinstance(payload, _Raw) else json.dumps(payload)
        data = text.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by ``http.server`` itself (bad request line, 501, ...) as JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._reply(code, {"error_code": code, "message": message or f"HTTP {code} {phrase}"})

    def handle_one_request(self) -> None:
        super().handle_one_request()
        restart = getattr(self.server, "restart_deadline", None)
        if restart is not None:
            restart(self.request)  # the next request's time starts now

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logs go to the ``sealtrail.registry`` logger at DEBUG (quiet by default)."""
        log.debug("%s - " + format, self.address_string(), *args)
