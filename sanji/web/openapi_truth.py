"""The published OpenAPI schema, made to say exactly what the API does (checked by schemathesis in the suite).

Litestar's generated schema is the starting point; ``truthful`` corrects it where it falls short:

* every error is ``ErrorBody`` (``{error, message, hint, retryable}``, sometimes ``detail``),
  documented for every status an operation can answer with;
* JSON request bodies are msgspec's own schemas of the forms — nested limits, and
  ``additionalProperties: false`` where unknown fields are refused — with the character class
  of ``protocol.bounds`` as a ``pattern`` on every free string, and ``required: true``;
* raw bodies (an attachment; every ``/sync/v1`` request) are opaque binary bodies, the sync ones
  with their signature headers, answered in ``application/msgpack``.

Pure dict-to-dict: the node serves it (``SchemaPlugin``) and ``openapi_dump`` writes the same.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from protocol.bounds import LINE_CLASS, MAX_NAME, TEXT_CLASS, TEXT_FIELDS, whole
from protocol.limits import MAX_TEXT
from protocol.scans import SCAN_TYPES
from sanji.forms import ActionForm, RegisterForm
from sanji.office.forms import AppealForm, DecisionForm, EntryForm
from sanji.sync.requests_auth import HEADER_KEY, HEADER_NODE, HEADER_SIGNATURE
from sanji.web.archive_restore import RestoreRequest
from sanji.web.desk_api import PrecheckForm

ERROR = "#/components/schemas/ErrorBody"
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal and failure: what happened, what to do, and whether repeating it can help.",
    "required": ["error", "message", "hint", "retryable"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. action_refused, not_found"},
        "message": {"type": "string"},
        "hint": {"type": "string"},
        "retryable": {"type": "boolean"},
        "detail": {"description": "per-field problems of a refused form, when there are some"},
        "error_code": {"type": "string", "description": "the rule's own code (a refused step, a version too far …)"},
        "params": {"type": "object", "description": "the values the message names (matter, version, department …)"},
        "message_zh": {"type": "string", "description": "the message in Chinese, where a desk shows it"},
        "kind": {"type": "string", "description": "a step refused for the account's place: the step's kind"},
        "errand": {"type": "string", "description": "a step refused for the account's place: the errand's id"},
    },
}
STATUS_TEXT = {
    "400": "Bad request: the input is malformed or out of bounds; nothing was changed",
    "401": "Not logged in (or an unsigned or wrongly signed sync request)",
    "403": "Not allowed for this caller or node",
    "404": "Not held here",
    "409": "Refused by the errand's (or the office's) rules, or the errand changed meanwhile",
    "413": "The body is larger than this endpoint takes",
    "415": "The body's media type is not the one this endpoint reads",
    "429": "Too many attempts: wait as Retry-After says",
    "500": "A bug: nothing was changed; the node log has the details",
    "503": "Temporarily unable (e.g. the database is busy): retry later",
}
ALWAYS = ("400", "401", "403", "404", "409", "429", "500", "503")
WITH_BODY = ("413", "415")
FORMS = {
    "RegisterForm": RegisterForm,
    "ActionForm": ActionForm,
    "PrecheckForm": PrecheckForm,
    "EntryForm": EntryForm,
    "AppealForm": AppealForm,
    "DecisionForm": DecisionForm,
    "RestoreRequest": RestoreRequest,
}
MSGPACK = "application/msgpack"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BINARY = {"type": "string", "format": "binary"}


def _error(status: str) -> dict[str, Any]:
    return {"description": STATUS_TEXT[status], "content": {"application/json": {"schema": {"$ref": ERROR}}}}


def _with_character_class(name: str, prop: dict[str, Any]) -> None:
    """Give a free string the pattern ``protocol.bounds`` holds it to (fields already narrower keep theirs)."""
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        _with_character_class(name, prop["items"])
        return
    if prop.get("type") != "string" or "pattern" in prop or "enum" in prop:
        return
    text = name in TEXT_FIELDS
    low = int(prop.get("minLength", 0))
    high = int(prop.get("maxLength", MAX_TEXT if text else MAX_NAME))
    prop["pattern"] = whole(f"[^{TEXT_CLASS if text else LINE_CLASS}]{{{low},{high}}}")


def form_schemas() -> dict[str, dict[str, Any]]:
    _, components = msgspec.json.schema_components(list(FORMS.values()), ref_template="#/components/schemas/{name}")
    for schema in components.values():
        for name, prop in schema.get("properties", {}).items():
            _with_character_class(name, prop)
            for option in prop.get("anyOf", ()):
                _with_character_class(name, option)
    return components


def _sync_operation(op: dict[str, Any], path: str) -> None:
    signed = not path.endswith("/enroll")
    proof = "signed by the sending node over its path and bytes" if signed else "proved by the enrollment token"
    op["requestBody"] = {
        "required": True,
        "description": f"A msgpack-encoded sync message (protocol.session), opaque here; {proof}.",
        "content": {MSGPACK: {"schema": BINARY}},
    }
    if signed:
        op["parameters"] = [
            {
                "name": header,
                "in": "header",
                "required": False,
                "description": about,
                "schema": {"type": "string", "maxLength": 200},
            }
            for header, about in (
                (HEADER_NODE, "the sending node's id"),
                (HEADER_KEY, "the id of the key that signed"),
                (HEADER_SIGNATURE, "base64 Ed25519 signature (sanji.sync.requests_auth)"),
            )
        ]
    op["responses"]["200"] = {
        "description": "The msgpack-encoded answer (protocol.session)",
        "content": {MSGPACK: {"schema": BINARY}},
    }


def truthful(raw: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(raw)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ERROR_BODY
    components.update(form_schemas())
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if path.startswith("/sync/"):
                _sync_operation(op, path)
            elif path.endswith("/attachments") and method == "post":
                op["requestBody"] = {
                    "required": True,
                    "description": "The raw bytes of the scan or photo; Content-Type (a photo's or a PDF's, "
                    "protocol.scans) is kept as its media type, any other is refused (415 attachment_type).",
                    "content": {kind: {"schema": BINARY} for kind in SCAN_TYPES},
                }
            elif path.endswith("/ledger/export") and method == "get":
                op["responses"]["200"] = {
                    "description": "The ledger or its statistics as a file (format=xlsx or csv), Chinese headers",
                    "content": {XLSX: {"schema": BINARY}, "text/csv; charset=utf-8": {"schema": {"type": "string"}}},
                }
            if "requestBody" in op:
                op["requestBody"]["required"] = True
            statuses = ALWAYS + (WITH_BODY if "requestBody" in op else ())
            for status in statuses:
                op["responses"][status] = _error(status)
    return schema


class SchemaPlugin(JsonRenderPlugin):
    """Serves ``truthful`` of the generated schema at /schema/openapi.json."""

    def __init__(self) -> None:
        super().__init__()
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = json.dumps(truthful(openapi_schema), ensure_ascii=False).encode()
        return self._rendered
