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
    "invalid_assessment_rules": "考核细则有误",
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
    "attachment_archived_unreachable": "附件已归档，暂时无法从上级节点取回",
    "attachment_budget_spent": "今日的附件流量已用完",
    "attachment_refused": "上级节点答复的不是该附件（大小或内容不符），未保存",
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
    "Reload the errand and try again.": "请重新打开办件后再试",
    "Install the PostgreSQL client tools (postgresql-client)": "请安装 PostgreSQL 客户端工具（postgresql-client）",
    "Export from a node on the errand's path (its village, township or the county).": (
        "请在办件流经的节点（其所在村、乡镇或县）导出"
    ),
    "Enroll it with a token from its parent: `sanji enroll join --config ... --token ...`.": (
        "请用上级节点发放的令牌入网：`sanji enroll join --config ... --token ...`"
    ),
    "Upgrade those nodes and let each exchange once, or publish the matters at the generation they know.": (
        "请升级这些节点并让每个节点同步一次，或按它们能识别的规则代次发布事项"
    ),
    "Publish a version above the highest one the nodes below report.": "请以高于下级节点所报最高版本的版本号发布",
    "Name the node that will import the file: the parent, or a node below.": (
        "请指明将导入该文件的节点：上级节点或下级节点"
    ),
    "Import the file at the node it was exported for, or export a new one for this node.": (
        "请在该文件所写给的节点导入，或为本节点重新导出一份"
    ),
    "Import only files exported by a node of this county's tree.": "请只导入本县节点树中的节点导出的文件",
    "See deploy/README.md, 'Protected key files'.": "见 deploy/README.md 的“Protected key files”一节",
    "Correct the file (`sanji directory add` writes it), or enroll the nodes with tokens instead.": (
        "请改正该文件（`sanji directory add` 会写它），或改用令牌让各节点入网"
    ),
    "Choose a longer passphrase; a short one falls to guessing once the laptop is stolen.": (
        "请换一个更长的口令：笔记本一旦被盗，短口令会被猜中"
    ),
    "Put each key file back under its own name (node.key signs, node.enc.key opens sealed details).": (
        "请把各密钥文件改回原名（node.key 用于签名，node.enc.key 用于打开加密的个人信息）"
    ),
    (
        'Set [node] key_passphrase_env = "SANJI_KEY_PASSPHRASE" in the node\'s config and start it with the '
        "passphrase in that environment variable (deploy/README.md)."
    ): (
        '请在节点配置的 [node] 中写 key_passphrase_env = "SANJI_KEY_PASSPHRASE"，'
        "启动时在该环境变量中给出口令（见 deploy/README.md）"
    ),
    "Check the passphrase; if it is right, restore the key file from its backup.": (
        "请核对口令；口令无误时，请从备份恢复密钥文件"
    ),
    "Failed logins slow down further attempts for a while; nothing is locked.": (
        "登录失败会使之后的尝试暂时变慢；账号并未锁定"
    ),
    "Ask an account of that department or window (or one without either: the whole node).": (
        "请由该部门或窗口的账号（或不限部门和窗口、负责本节点全部业务的账号）操作"
    ),
    "sanji accounts list shows the node's accounts; sanji accounts add creates one": (
        "`sanji accounts list` 列出本节点的账号，`sanji accounts add` 新建账号"
    ),
    "sanji errand list shows them": "`sanji errand list` 列出本节点的办件",
    "Check that [parent] url points at the node that issued the token.": "请核对配置中 [parent] url 指向发放令牌的节点",
    "Check [parent] url in the config and that the parent node is running, then run the command again.": (
        "请核对配置中的 [parent] url，并确认上级节点正在运行，然后重新运行命令"
    ),
    "Correct the record and send it again.": "请改正该记录后重新提交",
    "The county publishes them; assess at the county hub.": "考核细则由县级发布，请在县级枢纽节点进行考核",
    "The county's rules arrive with the next exchange with the parent.": "县级的考核细则随下一次与上级的同步到达",
    "Publish them at the county hub.": "请在县级枢纽节点发布",
    "Keep the county field as the rules held show it.": "请保持 county 字段与现行考核细则一致",
    "The parent could not be reached; the exchange will be retried with backoff.": "连不上上级节点；将稍后自动重试同步",
    "It is fetched back when the link to the township or county is back; try again later.": (
        "与乡镇或县级的连接恢复后即可取回，请稍后再试"
    ),
    "Start the node's hub on the primary first; the replica follows it.": "请先在主库上启动枢纽节点，副本随后跟上",
    "Point the node at its own database file.": "请让节点使用它自己的数据库文件",
    (
        "This node's database is not the one its certificate was issued for: a copied key or disk. Re-enroll "
        "the genuine machine with a new token; the exchange was refused and logged."
    ): (
        "本节点的数据库不是其证书所签发的那一个（密钥或磁盘被复制）"
        "。请用新令牌让真正的机器重新入网；此次同步已拒绝并记录"
    ),
    "Enroll it with a token from its parent (`sanji enroll join`), or ask the parent to re-issue.": (
        "请用上级节点发放的令牌入网（`sanji enroll join`），或请上级重新签发"
    ),
    "Choose an id such as C1T01V03: it must be unique in the whole tree.": (
        "请选用如 C1T01V03 的编号：编号须在整个节点树中唯一"
    ),
    "A county is enrolled by its city, a township by the county, a village by its township.": (
        "县由市级接入，乡镇由县级接入，村由所属乡镇接入"
    ),
    (
        "Choose another id, e.g. one that starts with this county's (C1T05). Only the county moves a node to "
        "another parent."
    ): "请另选编号，例如以本县编号开头（C1T05）。只有县级能把节点移到另一个上级之下",
    "Choose another id or name; nothing was issued.": "请另选编号或名称；未发放任何令牌",
    (
        "Enroll the node first: `sanji enroll join --config ... --token ...` (or, at the county, "
        "`sanji trust init-root`)."
    ): "请先让节点入网：`sanji enroll join --config ... --token ...`（县级则用 `sanji trust init-root`）",
    (
        "Two running copies of this node were seen. Every request of this node id is refused until the genuine "
        "machine is enrolled again with a token from its parent (sanji enroll join)."
    ): (
        "发现本节点有两个副本同时运行。在真正的机器用上级节点发放的令牌重新入网（sanji enroll join）"
        "之前，该节点编号的一切请求都被拒绝"
    ),
    "Upgrade the primary's hub first (it migrates the database), then start this process.": (
        "请先升级主库上的枢纽节点（由它升级数据库），再启动本进程"
    ),
    "Upgrade this node: the registering node seals with a newer suite.": "请升级本节点：登记节点使用了较新的加密方式",
    "The batch bytes are damaged or not a Sanji batch; re-export it from the origin node.": (
        "数据包已损坏或不是三级联办的数据包；请在来源节点重新导出"
    ),
    "Split the backlog into smaller batches; see protocol.limits.": (
        "请把积压的内容分成较小的数据包（见 protocol.limits）"
    ),
    "Upgrade this node: the sender uses a newer batch format.": "请升级本节点：发送方使用了较新的数据包格式",
    "The batch was altered or signed by a key this node does not trust; it was not applied.": (
        "数据包被改动过，或由本节点不信任的密钥签名；未应用"
    ),
    "The batch does not follow the previous batch of its stream.": "该数据包与其数据流的上一批不衔接",
    "Send the missing earlier batches first; this one is held until they arrive.": (
        "请先发送缺少的更早批次；在它们到达之前，此批暂存"
    ),
    "This node is not on the path of that stream; send it towards its audience.": (
        "本节点不在该数据流的线路上；请发往其应达节点"
    ),
    "The errand's rules do not allow this action here and now.": "办件规则不允许此时在此处进行该操作",
    "Sync with your own parent, or an ancestor configured as a fallback.": (
        "请与本节点的上级同步，或与配置为备用的更上级节点同步"
    ),
    "Correct the assessment rules and publish them again.": "请改正考核细则后重新发布",
    "Kept aside until the issuer's certificate arrives.": "暂存，待签发节点的证书到达后处理",
    "The file was not written by a Sanji node; do not use it.": "该文件不是三级联办节点写出的，请勿使用",
    "Export in several files (a few days at a time), or carry a smaller export.": (
        "请分成几个文件导出（每次几天），或带送较小的导出文件"
    ),
    "Check that the right file was chosen.": "请核对所选文件是否正确",
    "Copy the file again from the exporting node, or export it anew.": "请从导出节点重新复制该文件，或重新导出",
    "Export in several files.": "请分成几个文件导出",
    "Send the body as JSON with the header Content-Type: application/json.": (
        "请以 JSON 发送请求体，并带上 Content-Type: application/json 头"
    ),
    "Check the request against /schema.": "请对照 /schema 检查请求",
    "Check the record's id: it is listed by GET /api/office/assessment.": (
        "请核对记录编号：GET /api/office/assessment 列出全部记录"
    ),
    (
        "Sync requests must be signed with the sending node's current key (a node started from an old version, "
        "or a key that was revoked or rotated away). Enroll or update the node."
    ): ("同步请求须用发送节点的现行密钥签名（节点可能由旧版本启动，或密钥已被吊销或更换）。请让节点重新入网或升级"),
    "Sign the request again with a counter above last_counter (the sync driver does so by itself).": (
        "请以高于 last_counter 的计数重新签名请求（同步程序会自动这样做）"
    ),
    "Address the request to the node named in recipient, if that node is one of your ancestors.": (
        "请把请求发给 recipient 所指的节点（如果它是本节点的上级之一）"
    ),
    "Push the batch with the attach action first; attachments follow their actions.": (
        "请先推送含附件操作的批次：附件跟在其操作之后"
    ),
    "List only weekend days that are worked (调休上班); is it meant to be a holiday?": (
        "调休上班日只列周末的上班日；这一天是否应为放假日？"
    ),
    (
        "The applicant's details are sealed to the nodes on the errand's path; this node is not one of them, its "
        "sealing key is not loaded, or the sealed bytes were altered or moved from another errand."
    ): ("申请人信息只对办件线路上的节点加密：本节点不在其中，或未载入加密密钥，或加密内容被改动、或是从另一办件挪来的"),
    (
        "The batch is signed with a key that was revoked or replaced before it; it was quarantined, not applied. "
        "If the node is genuine, re-enroll it or let it finish its key rotation, then it signs anew."
    ): (
        "数据包所用的签名密钥在此之前已被吊销或更换；已隔离，未应用。"
        "如该节点是真实的，请让它重新入网或完成密钥更换，之后它会重新签名"
    ),
    (
        "Two different batches carry the same number in one stream: the origin may have been restored from a "
        "backup or cloned. The batch was quarantined for an administrator."
    ): ("同一数据流中两个不同的数据包编号相同：来源节点可能从备份恢复过或被复制。该数据包已隔离，待管理员处理"),
    (
        "The certificate, root or revocation does not verify against the county's root of trust; it was not "
        "kept. Ask the issuing node to issue it again."
    ): "证书、信任根或吊销记录未能通过本县信任根的校验，未保存。请让签发节点重新签发",
    "Two signed documents of one version: keep both files and tell the county's administrator.": (
        "同一版本有两份不同的签名文件：请保留两份文件并告知县级管理员"
    ),
    "Export it again at the township or village: `sanji catalogue export --version N`.": (
        "请在乡镇或村节点重新导出：`sanji catalogue export --version N`"
    ),
    (
        "Retrying under this key cannot help: send a new Idempotency-Key for a new request; a retry sends the same "
        "request under its key."
    ): "用同一键重试无济于事：新的请求请使用新的 Idempotency-Key；重试时须以同一键发送相同的请求",
    "Send 1–200 visible ASCII characters, a new key for each request (a UUID will do).": (
        "请发送 1–200 个可见 ASCII 字符，每个请求一个新的键（如 UUID）"
    ),
}
# A hint with a number in it: (the English, the Chinese with the same groups).
_HINT_PATTERNS = (
    (re.compile(r"^Publish version (\d+) or higher\.$"), r"请以第\1版或更高的版本号发布"),
    (re.compile(r"^Publish version (\d+)\.$"), r"请以第\1版的版本号发布"),
    (re.compile(r"^One of: (.+)$"), r"可选：\1"),
    (
        re.compile(r"^Set (\S+) to the passphrase \(e\.g\. `read -rs \S+; export \S+`\) and run the command again\.$"),
        r"请在环境变量 \1 中给出口令（例如 `read -rs \1; export \1`）后重新运行命令",
    ),
    (
        re.compile(r"^Set (\S+) \(or give the passphrase another way\) and run the command again\.$"),
        r"请设置环境变量 \1（或以其他方式给出口令）后重新运行命令",
    ),
    (
        re.compile(r"^Start the node with the key passphrase in (\S+): "),
        r"启动节点时请在环境变量 \1 中给出密钥口令（见 deploy/README.md）",
    ),
    (re.compile(r"^Open the errand at (\S+), which holds the attachment\.$"), r"请在持有该附件的 \1 打开办件"),
    (
        re.compile(r"^Give --root-key once for each of (\d+) root key files "),
        r"请为 \1 个根密钥文件各给一次 --root-key（`sanji trust init-root` 生成的 root-1.key、"
        r"root-2.key……，由不同负责人保管）",
    ),
    (
        re.compile(r"^Install (.+) or later to open it, or, to go back to sanji (\S+), "),
        r"请安装 \1 或更新的版本来打开它；要退回 sanji \2，"
        r"请恢复升级前的备份（`sanji restore --config ... --from ...`）",
    ),
    (
        re.compile(r"^Install the build of sanji (\S+) that migrated it \(schema (\S+)\) or a later one to open it, "),
        r"请安装升级了它的那个 sanji \1 构建（含数据库结构 \2）或更新的构建来打开它，"
        r"或恢复升级前的备份（`sanji restore --config ... --from ...`）",
    ),
    (
        re.compile(r"^Publish the official arrangement for (\d{4}) "),
        r"请在县级日历文件中发布 \1 年的官方安排（国务院办公厅关于\1年部分节假日安排的通知）"
        r"，或升级日历库；时限从不按普通周末推算",
    ),
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
        if found_in := pattern.match(hint):
            return Pair(found_in.expand(zh), hint)
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


def both(zh: str, en: str) -> str:
    """``<中文> <English>`` on one line: a row of a listing, or an item under a report line."""
    return _join(Pair(zh, en))
