"""What a command tells the operator, Chinese first, English after.

A refusal is one line, ``error: <中文> <English>`` (``hint: <中文> <English>`` under it): the ``error:`` and
``hint:`` tags stay first and in English because operators' scripts look for them. A problem of a catalogue
or calendar file is two lines, its place and kind in Chinese (``sanji.problem_words``, the table the county's
upload screens use) and the checker's English line under it. An error that carries its own Chinese
(``message_zh``: an account refusal, a version not newer, an errand rule's refusal) says that; any other
leads with what kind of failure it is (``ERRORS_ZH``), the English after it saying exactly what.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, TextIO

from protocol.errors import ActionRefused, SanjiError
from sanji.bilingual import CJK, Pair, split_pair

if TYPE_CHECKING:
    from protocol.catalogue import CatalogueError
    from protocol.deadlines import CalendarError

# ``sanji.problem_words`` (the catalogue loader, the calendar library) and the refusals' wording load only when a
# line needs them: ``sanji keys init`` says its errors without them.

# An error's kind in Chinese, by its ``code`` (``SanjiError.code``), for errors that carry no Chinese of their own.
ERRORS_ZH = {
    "invalid_catalogue": "事项目录有误",
    "calendar_error": "工作日历无法回答",
    "calendar_unknown": "工作日历未覆盖该日期",
    "calendar_invalid": "工作日历有误",
    "key_file": "密钥文件无法使用",
    "directory_file": "节点目录文件有误",
    "untrusted": "证书或信任根校验未通过",
    "enrollment_refused": "入网未完成（令牌有误、已用过或已过期）",
    "trust_pending": "入网尚未完成",
    "malformed_batch": "数据包已损坏或不是三级联办的数据包",
    "batch_too_large": "数据包过大",
    "unsupported_format": "数据包格式较新，请升级本节点",
    "bad_signature": "签名校验未通过，未应用",
    "revoked_key": "签名密钥已被吊销，未应用",
    "wrong_route": "该数据包不属于本节点的线路",
    "chain_broken": "数据包前后不衔接",
    "chain_gap": "缺少更早的数据包",
    "chain_fork": "同一编号出现两个不同的数据包",
    "action_refused": "办件规则不允许此操作",
    "version_too_far": "版本号跳得太远",
    "version_not_newer": "版本号须高于现行版本",
    "account_refused": "账号操作未完成",
    "attachment_archived": "附件已归档在上级节点",
    "clone_frozen": "本节点疑似被复制，已暂停同步",
    "clone_suspected": "疑似出现复制的节点",
    "database_closed": "数据库已关闭",
    "read_replica": "这里是只读副本，只能查看和导出",
    "database_newer": "数据库由较新版本写入，本版本不能打开",
}
OTHER_ZH = "操作未完成"
# The hints commands give, in Chinese, by the English hint (the catalogue's and calendar's are in problem_words).
HINTS_ZH = {
    "Give the path of the .sjx file written by `sanji export`.": "请给出 `sanji export` 写出的 .sjx 文件的路径",
    "Name the .sjx file inside it.": "请指明其中的 .sjx 文件",
    "Ask another administrator.": "请让另一位管理员操作",
    "Create or enable another administrator first.": "请先新建或启用另一个管理员账号",
    "Choose another name.": "请换一个名称",
    "Ask the parent node's director for a new enrollment token: tokens work once, for one node, and expire.": (
        "请向上级节点负责人申请新的入网令牌：令牌只能用一次，只对一个节点有效，且会过期"
    ),
    "Raise the version number and publish again.": "请提高版本号后重新发布",
    "Start from `sanji rules show --json` and edit it.": "请在 `sanji rules show --json` 的输出上修改",
}
# A hint with a number in it: (the English, the Chinese with the same groups).
_HINT_PATTERNS = (
    (re.compile(r"^Publish version (\d+) or higher\.$"), r"请以第\1版或更高的版本号发布"),
    (re.compile(r"^Publish version (\d+)\.$"), r"请以第\1版的版本号发布"),
)


def _kind_zh(exc: BaseException, other: str) -> str:
    from sanji.config import ConfigError

    if isinstance(exc, SanjiError):
        return ERRORS_ZH.get(exc.code, other)
    if isinstance(exc, ConfigError):
        return "节点配置文件有误"
    if isinstance(exc, FileNotFoundError):
        return "找不到文件"
    if isinstance(exc, PermissionError):
        return "没有读写该文件的权限"
    if isinstance(exc, OSError):
        return "读写文件失败"
    return other


def error_pair(exc: BaseException, other: str = OTHER_ZH) -> Pair:
    """What went wrong, Chinese first: the error's own Chinese where it has some, else its kind (``other`` for a
    kind no table names: what the command did not do)."""
    en = str(getattr(exc, "message_en", "") or getattr(exc, "message", "") or exc)
    zh = str(getattr(exc, "message_zh", "") or "")
    if not zh and isinstance(exc, ActionRefused):
        from protocol.refusals import bilingual

        zh = bilingual(exc.refusal)[0]
    if zh and en.startswith(zh):  # a message already worded "中文 English" (VersionTooFar, VersionNotNewer)
        en = en[len(zh) :].strip()
    if not zh:
        found = split_pair(en) if CJK.match(en) else None
        if found is not None:
            return found
        zh = _kind_zh(exc, other)
    return Pair(zh, en)


def hint_pair(hint: str) -> Pair:
    """A hint Chinese first where a table words it (``HINTS_ZH`` here, ``sanji.problem_words.HINTS_ZH`` for the
    catalogue's and calendar's), or it is "中文 English" already; else English alone."""
    from sanji.problem_words import HINTS_ZH as DOCUMENT_HINTS_ZH

    zh = HINTS_ZH.get(hint) or DOCUMENT_HINTS_ZH.get(hint)
    if zh:
        return Pair(zh, hint)
    for pattern, zh in _HINT_PATTERNS:
        if pattern.match(hint):
            return Pair(pattern.sub(zh, hint), hint)
    found = split_pair(hint) if CJK.match(hint) else None
    return found if found is not None else Pair("", hint)


def _join(pair: Pair) -> str:
    return f"{pair.zh} {pair.en}".strip()


def error(zh: str, en: str, *, file: TextIO | None = None) -> None:
    """``error: <中文> <English>``."""
    print(f"error: {_join(Pair(zh, en))}", file=file or sys.stdout)


def hint(text: str, *, file: TextIO | None = None) -> None:
    """``hint: <中文> <English>`` (the English alone for a hint no table words); nothing for no hint."""
    if text:
        print(f"hint: {_join(hint_pair(text))}", file=file or sys.stdout)


def failure(exc: BaseException, *, file: TextIO | None = None, other: str = OTHER_ZH) -> None:
    """An error and its hint, Chinese first."""
    said = error_pair(exc, other)
    error(said.zh, said.en, file=file)
    if isinstance(exc, SanjiError):
        hint(exc.hint, file=file)


def problems(lines: list[str], *, file: TextIO | None = None) -> None:
    """Each problem of a file: its place and kind in Chinese, the checker's English line under it."""
    from sanji.problem_words import problem_pair

    out = file or sys.stdout
    for line in lines:
        said = problem_pair(line)
        print(f"  {said.zh}", file=out)
        print(f"    {said.en}", file=out)


def document_failure(
    exc: CatalogueError | CalendarError, what: str, name: str = "", *, file: TextIO | None = None
) -> None:
    """A catalogue (``what`` 目录) or calendar (日历) file ``name`` that does not check: the headline, each
    problem, the hint."""
    from sanji.problem_words import headline_pair

    listed: list[str] = list(getattr(exc, "problems", []))
    headline = exc.message.splitlines()[0].removesuffix(":")
    said = headline_pair(headline, what, name)
    error(said.zh, said.en, file=file)
    problems(listed, file=file)
    hint(exc.hint, file=file)


def info(zh: str, en: str, *, file: TextIO | None = None) -> None:
    """A report line: the Chinese, then the English on the next line."""
    out = file or sys.stdout
    print(zh, file=out)
    print(en, file=out)
