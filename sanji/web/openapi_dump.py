"""Print the OpenAPI schema a node serves: ``python -m sanji.web.openapi_dump > docs/openapi.json``.

The schema is checked in and a test diffs it, so an API change is always a visible change.
"""

from __future__ import annotations

import json
import sys

from sanji.config import NodeSection, NodeSettings
from sanji.web.app import build_app
from sanji.web.openapi_truth import truthful


def schema() -> dict[str, object]:
    settings = NodeSettings(node=NodeSection(id="X", role="town", key_file="-", directory="-"))
    app = build_app(settings, title="Sanji node API")
    return truthful(app.openapi_schema.to_schema())


def main() -> int:
    json.dump(schema(), sys.stdout, ensure_ascii=False, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
