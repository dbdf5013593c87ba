"""One list of steps and stages, one table of refusal words: everything else is derived from them."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from protocol.actions import Action
from protocol.refusals import REFUSAL_CODES, TEXTS, Refusal, bilingual
from protocol.stages import STAGE_LABELS, STAGES
from protocol.steps import ACTION_DONE, DUTY_DONE, STEP_KINDS, STEPS
from sanji.auth import roles
from sanji.forms import ACTION_KINDS
from sanji.service import BUILDERS
from sanji.web.screens import ACTION_LABELS, KIND_FIELDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_wire_action_is_a_step_or_the_registration() -> None:
    tags = {cls.__struct_config__.tag for cls in typing.get_args(Action)}
    assert tags == {s.tag for s in STEPS.values()} | {"register"} | set(DUTY_DONE)
    assert set(ACTION_DONE) == tags - {"handoff"}


def test_forms_labels_builders_and_roles_name_only_steps() -> None:
    assert ACTION_KINDS == STEP_KINDS and tuple(BUILDERS) == STEP_KINDS
    assert set(ACTION_LABELS) == set(STEP_KINDS) and set(KIND_FIELDS) <= set(STEP_KINDS)
    named = set().union(*roles.STEPS.values()) | set(roles.WINDOW_STEPS)
    assert named <= {*STEP_KINDS, "register"}, named - {*STEP_KINDS, "register"}


def test_every_stage_has_its_words() -> None:
    assert tuple(STAGE_LABELS) == STAGES


def test_every_refusal_code_is_worded_in_both_languages() -> None:
    assert set(TEXTS) == set(REFUSAL_CODES)
    for code in REFUSAL_CODES:
        params = {name: f"<{name}>" for name in re.findall(r"{(\w+)}", "".join(TEXTS[code]))}
        zh, en = bilingual(Refusal(code=code, params=params))  # type: ignore[arg-type]
        assert zh and en and "{" not in zh + en, code
        assert re.search(r"[\u4e00-\u9fff]", zh), f"{code}: the Chinese text is Chinese"


def test_no_screen_matches_english_refusals_any_more() -> None:
    screens = (ROOT / "sanji/web/screens.py").read_text(encoding="utf-8")
    assert "REFUSALS" not in screens and "refusal_zh" not in screens
