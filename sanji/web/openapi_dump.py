"""Print the OpenAPI schema of the nodes: ``python -m sanji.web.openapi_dump > docs/openapi.json``.

Each tier serves its own desk, so each node serves its own schema (``/schema/openapi.json``). The
checked-in document is their union: every path any tier serves, each operation marked with the
tiers that serve it (``x-sanji-tiers``). ``schema(role)`` is one tier's, as that node serves it.
The schema is checked in and a test diffs it, so an API change is always a visible change.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sanji import tiers
from sanji.config import NodeSection, NodeSettings
from sanji.web.app import build_app
from sanji.web.openapi_truth import truthful

TIER_KEY = "x-sanji-tiers"


def tier_schema(role: str) -> dict[str, Any]:
    """The schema a node of ``role`` serves."""
    settings = NodeSettings(node=NodeSection(id="X", role=role, key_file="-", directory="-"))
    app = build_app(settings, desk=tiers.desk(role), title="Sanji node API")
    return truthful(app.openapi_schema.to_schema())


def schema(role: str | None = None) -> dict[str, Any]:
    """One tier's schema, or (``None``) the union of every tier's with the tiers of each operation."""
    if role is not None:
        return tier_schema(role)
    union: dict[str, Any] = {}
    for tier in tiers.PACKAGES:
        one = tier_schema(tier)
        if not union:
            union = {k: v for k, v in one.items() if k not in ("paths", "components", "tags")}
            union["paths"], union["components"], union["tags"] = {}, {}, []
        for path, item in one["paths"].items():
            into = union["paths"].setdefault(path, {})
            for method, operation in item.items():
                into.setdefault(method, {**operation, TIER_KEY: []})[TIER_KEY].append(tier)
        for section, entries in one.get("components", {}).items():
            union["components"].setdefault(section, {}).update(entries)
        for tag in one.get("tags", []):
            if tag not in union["tags"]:
                union["tags"].append(tag)
    if not union["tags"]:
        del union["tags"]
    return union


def main() -> int:
    json.dump(schema(), sys.stdout, ensure_ascii=False, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
