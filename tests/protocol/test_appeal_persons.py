"""``protocol.assessment.same_person``: accounts where both are known, else names as ``name_key`` keys them."""

from __future__ import annotations

from protocol.assessment import Appeal, Person, own_appeal_problem, same_person
from protocol.names import name_key


def test_accounts_decide_where_both_are_known() -> None:
    assert same_person(Person(name="王伟", account=3), Person(name="王伟", account=7)) is None
    assert same_person(Person(name="王伟", account=3), Person(name="王大伟", account=3)) == "account"


def test_names_only_where_an_account_is_unknown() -> None:
    assert same_person(Person(name="王伟", account=3), Person(name="王　伟 ")) == "name"
    assert same_person(Person(name="ＷａｎｇＷｅｉ"), Person(name="wang wei")) == "name"
    assert same_person(Person(name="王伟"), Person(name="王芳")) is None
    assert same_person(Person(name=" \u200b"), Person(name="\u3000")) is None  # a blank name is no one
    assert name_key("王\u200b伟\u3000") == "王伟"


def test_a_centre_appeal_compares_the_filer_only() -> None:
    appeal = Appeal(id="AP-1", quarter="2026Q4", target="centre", subject="T01", reason="复核", by="甲", by_account=1)
    assert own_appeal_problem(appeal, Person(name="T01", account=2)) is None
    refused = own_appeal_problem(appeal, Person(name="乙", account=1))
    assert refused is not None and "按登录账号核对" in refused.zh and "提出人" in refused.zh
