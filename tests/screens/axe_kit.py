"""axe-core in a real Chromium page: the shipped script (tests/screens/vendor/axe.min.js), nothing from the internet.

``violations(page)`` injects axe and runs its WCAG 2.x A/AA rules on the page as it stands; each
violation comes back as "rule-id (impact): help — first offending selectors", ready for an assert.
``phone_problems(page)`` adds a page wider than a 390 px phone.
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


def phone_problems(page: Any, width: int = 390) -> list[str]:
    """``violations`` and, on a phone's ``width``, a page wider than the screen (one scrolls sideways)."""
    found = violations(page)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    if wide > width:
        found.append(f"scrolls sideways at {width} px: {wide} px wide")
    return found
