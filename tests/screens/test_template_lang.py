"""Every template marks the language of its fixed text, so a screen reader switches voice (WCAG 3.1.2).

A page's ``<html lang>`` follows the reader's choice (``zh-CN``, or ``en`` with the English switch), but many
templates write a fixed pair, Chinese then ``<span class="en">English</span>``, that does not swap. So:

- an element of class ``en`` (the English second line) says ``lang="en"``;
- an element marked ``lang="en"`` holds no Chinese written in the template (a Chinese term inside an English
  sentence sits in its own ``<span lang="zh-CN">``) and no ``bi`` output, which marks its own languages: text of
  mixed languages is styled ``alt`` instead;
- an alert, notice or warning mark (``role="alert"``/``"status"``, class ``error``, ``notice``, ``flash``,
  ``note``, ``warn``) whose
  Chinese is written in the template, not through ``bi``, marks it ``lang="zh-CN"``, or an English page would
  read it in an English voice: on itself when it holds no ``bi`` output (whose first part takes the page's
  language), else on the element that holds the Chinese.

Read from the template files themselves, so a new template is held to it too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "sanji" / "web" / "templates").glob("*.html"))
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
TAG = re.compile(r"<(\w+)((?:[^<>{]|\{\{.*?\}\}|\{%.*?%\}|\{)*)>", re.S)
CJK = re.compile(r"[\u3400-\u9fff]")
BI = re.compile(r"\bbi\(|\|\s*bi\b")
ALERT = re.compile(r'role="(alert|status)"|class="[^"]*\b(error|notice|flash|note|warn)\b')


def classes(attrs: str) -> list[str]:
    found = re.search(r'\bclass="([^"]*)"', JINJA.sub(" ", attrs))
    return found[1].split() if found else []


def lang(attrs: str) -> str:
    found = re.search(r'\blang="([^"]*)"', attrs)
    return found[1] if found else ""


def inner(text: str, start: int, name: str) -> str:
    """The element's content from ``start`` (just after its opening tag) to its own closing tag."""
    depth, at = 1, start
    tags = re.compile(rf"<(/?){name}\b(?:[^<>]|\{{\{{.*?\}}\}}|\{{%.*?%\}})*>", re.S)
    while (found := tags.search(text, at)) is not None:
        depth += -1 if found[1] else 1
        if depth == 0:
            return text[start : found.start()]
        at = found.end()
    return text[start:]


def without(body: str, language: str) -> str:
    """``body`` without the elements marked ``lang=language`` (innermost first), its Jinja and its tags."""
    marked = re.compile(rf'<(\w+)\b[^<>]*\blang="{language}"[^<>]*>(?:(?!<\1\b).)*?</\1>', re.S)
    while True:
        shorter = marked.sub("", body)
        if shorter == body:
            break
        body = shorter
    return re.sub(r"<[^<>]*>", "", JINJA.sub("", body))


def elements(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, tag, attributes, content) of every element of a template."""
    text = path.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m[1], m[2], inner(text, m.end(), m[1]))
        for m in TAG.finditer(text)
        if not m[2].rstrip().endswith("/") and m[1] not in ("br", "input", "img", "meta", "link", "hr")
    ]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_english_lines_are_marked_english(path: Path) -> None:
    unmarked = [
        f"{path.name}:{line} <{tag}{attrs}>"
        for line, tag, attrs, _ in elements(path)
        if "en" in classes(attrs) and lang(attrs) != "en"
    ]
    assert not unmarked, unmarked


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_what_is_marked_english_holds_no_chinese(path: Path) -> None:
    mixed = [
        f"{path.name}:{line} <{tag}{attrs}>{body[:80]}"
        for line, tag, attrs, body in elements(path)
        if lang(attrs) == "en" and (BI.search(body) or CJK.search(without(body, "zh-CN")))
    ]
    assert not mixed, mixed


@pytest.mark.parametrize(
    "path", [p for p in TEMPLATES if not p.name.startswith(("print_", "_print"))], ids=lambda p: p.name
)
def test_fixed_chinese_in_alerts_is_marked_chinese(path: Path) -> None:
    """Printed documents (``_print.html``) are Chinese pages whatever the reader chose; screens may be English."""
    unmarked = [
        f"{path.name}:{line} <{tag}{attrs}>{body[:80]}"
        for line, tag, attrs, body in elements(path)
        if ALERT.search(attrs)
        and CJK.search(without(without(body, "zh-CN"), "en"))
        and (lang(attrs) != "zh-CN" or BI.search(body))
    ]
    assert not unmarked, unmarked
