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


def test_an_account_is_one_at_its_node() -> None:
    """Accounts are per node: account 3 at the county and account 3 at T01 are two people."""
    assert same_person(Person(name="王伟", account=3, node="C"), Person(name="王伟", account=3, node="T01")) is None
    assert same_person(Person(name="王伟", account=3, node="C"), Person(name="王 伟", account=3, node="C")) == "account"


def test_a_township_subject_is_not_the_county_account_of_the_same_name() -> None:
    """A county office account and a township clerk scored at T01 (no account known at the county) are two people,
    whatever their names; at the county, or where the subject's node is not known, the names are compared."""
    appeal = Appeal(id="AP-2", quarter="2026Q4", target="staff", subject="李明", reason="复核", by="甲", by_account=1)
    decider = Person(name="李明", account=5, node="C")
    assert same_person(decider, Person(name="李明", node="T01")) is None
    assert own_appeal_problem(appeal, decider, Person(name="李明", node="T01")) is None
    for subject in (Person(name="李明", node="C"), Person(name="李 明"), None):
        refused = own_appeal_problem(appeal, decider, subject)
        assert refused is not None and "按姓名核对" in refused.zh and "被考核人“" in refused.zh, subject
    # a name typed with no account (open demo mode): nothing but the names to go by, whatever the nodes
    typed = Person(name="李明", node="C")
    assert same_person(typed, Person(name="李明", node="T01")) == "name"
    # the filer's account is the office's, as the decider's is
    assert own_appeal_problem(appeal, Person(name="乙", account=1, node="C")) is not None
    assert own_appeal_problem(appeal, Person(name="甲", account=2, node="C"), Person(name="李明", node="T01")) is None


def test_name_keys_fold_what_reads_alike() -> None:
    """NFKC, without white space of any width, format characters (Cf) or variation selectors, case folded."""
    plain = name_key("王伟")
    for written in (
        "王\u00a0伟",  # no-break space
        "王\u2007伟",  # figure space
        "王\u202f伟",  # narrow no-break space
        "王\u2060伟",  # word joiner (Cf)
        "\ufeff王伟",  # byte order mark (Cf)
        "王\u200d伟",  # zero-width joiner (Cf)
        "王\u00ad伟",  # soft hyphen (Cf)
        "王\ufe00伟",  # a variation selector
        "王\U000e0100伟",  # an ideographic variation selector: a glyph of 王, not another 王
    ):
        assert name_key(written) == plain, repr(written)
    assert name_key("\uf900") == name_key("\u8c48")  # a compatibility ideograph: 豈 as the usual 豈
    assert name_key("\U0002f800") == name_key("\u4e3d")  # 丽 from the supplement
    assert name_key("\u2f00") == name_key("一")  # the Kangxi radical one
    assert name_key("e\u200b\u0301") == name_key("\u00e9")  # a mark after a zero-width space composes as without
    assert name_key("\u01f0") == name_key("J\u030c")  # folded, then composed again
    assert name_key("Wang Wei") != name_key("Wаng Wei")  # a Cyrillic а is no Latin a: an account tells them apart
    assert name_key("王伟") != name_key("王偉")  # traditional against simplified: out of scope


def test_a_display_name_is_compared_as_the_name_is() -> None:
    """zhangsan goes by 张三: where the subject is bound to no account, 张三 is the name compared too, and the
    refusal names the one that matched."""
    appeal = Appeal(id="AP-3", quarter="2026Q4", target="staff", subject="张 三", reason="复核", by="甲", by_account=1)
    decider = Person(name="zhangsan", account=4, node="C", also=("张三",))
    assert same_person(decider, Person(name="张 三", node="C")) == "name"
    refused = own_appeal_problem(appeal, decider, Person(name="张 三", node="C"))
    assert refused is not None and "“张三”与被考核人“张 三”为同一姓名" in refused.zh, refused
    assert own_appeal_problem(appeal, Person(name="zhangsan", account=4, node="C"), Person(name="张 三")) is None
    assert same_person(Person(name="zhangsan", also=("",)), Person(name="\u200b")) is None  # blank names no one
