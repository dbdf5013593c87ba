"""axe-core in a real Chromium page: the shipped script (tests/screens/vendor/axe.min.js), nothing from the internet.

``violations(page)`` injects axe and runs its WCAG 2.x A/AA rules on the page as it stands; each
violation comes back as "rule-id (impact): help — first offending selectors", ready for an assert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page: Any) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations", TAGS
    )
    out = []
    for v in found:
        targets = ", ".join(str(n["target"]) for n in v["nodes"][:3])
        out.append(f"{v['id']} ({v['impact']}): {v['help']} — {targets}")
    return out
