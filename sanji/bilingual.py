"""Chinese and English side by side: a ``Pair`` and the split of a "中文 English" string.

Screens (``sanji.web.language`` puts each pair in the reader's order) and commands (``sanji.cli.say`` prints
Chinese first) share these; this module imports nothing of the web stack, so a command that prints a pair does
not load Litestar.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Pair(NamedTuple):
    """A label built in Python: Chinese and English, shown in the order the reader chose."""

    zh: str
    en: str


CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
_SPLIT = re.compile(r"\s+(?=[A-Za-z])")


def split_pair(text: str) -> Pair | None:
    """``"县级政务服务中心 County hub"`` → ``Pair("县级政务服务中心", "County hub")``; None when not such a pair.

    The English part is what follows the last space before a Latin letter such that nothing after
    it is Chinese; the Chinese part must hold Chinese.
    """
    for match in _SPLIT.finditer(text):
        zh, en = text[: match.start()], text[match.end() :]
        if CJK.search(zh) and not CJK.search(en):
            return Pair(zh.strip(), en.strip())
    return None
