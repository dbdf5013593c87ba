"""What ``sanji verify`` found, Chinese first: a stored-evidence problem by its kind and place, a bundle's problem
or note by the English the checker (``sanji.evidence``) wrote it in.

``sanji verify store`` and ``check-bundle`` show each as a ``Pair``: the Chinese line (哈希链断裂：数据流
T01V01->T01 第 3 批……), then the checker's English whole, which names every hash and field. Their ``--json`` stays
the checker's English, the form scripts read. A problem of a wording no table names still leads in Chinese
(请核对此项（详见英文）), never in English alone.
"""

from __future__ import annotations

import re

from sanji.bilingual import Pair
from sanji.evidence import Problem

# A stored-evidence problem's kind (``sanji.evidence.KINDS``) in Chinese.
KINDS_ZH = {
    "frame_refused": "数据包校验失败（签名、格式或线路不符），已不是签名时的内容",
    "misfiled": "签名有效的数据包存放在另一批的位置（被调换或复制）",
    "hash_mismatch": "数据包存储的哈希值与其内容不符",
    "gap": "数据流缺少批次",
    "chain_broken": "哈希链断裂：数据包未指向前一批的哈希值",
    "cursor_mismatch": "数据流的同步进度与所存批次不一致",
    "digest_mismatch": "办件存储的摘要与其已签名操作推算的不符",
    "errand_missing": "已签名操作所属的办件在库中没有记录",
    "action_unbacked": "历史记录中的操作没有任何已存数据包承载",
    "action_missing": "已签名的操作在历史记录中缺失",
    "action_altered": "历史记录中的操作与签名原件不符",
    "status_mismatch": "操作存储的状态与按办件规则推算的不符",
    "attachment_altered": "附件内容的哈希值或大小与其名称不符",
    "attachment_dropped": "附件内容已丢失，且没有归档标记",
    "archive_unbacked": "附件未经上级节点确认即被归档，或归档标记不符",
    "attachment_row": "附件操作所留的附件记录（attachments 表）缺失、多余或不符",
}
OTHER_ZH = "请核对此项（详见英文）"

_BATCH = r"batch (\d+) of (\S+)"
# (pattern on the English, the Chinese with the same groups): a bundle's problems, an export's warnings, the notes.
_BUNDLE: tuple[tuple[str, str], ...] = (
    (r"^stream (\S+): batch (\d+) is missing \(next held: (\d+)\)$", r"数据流 \1 缺少第 \2 批（下一批为第 \3 批）"),
    (
        rf"^{_BATCH}: the stored hash differs from the hash of its bytes$",
        r"数据流 \2 第 \1 批：存储的哈希值与其内容不符",
    ),
    (rf"^{_BATCH} is refused: ", r"数据流 \2 第 \1 批校验失败（签名、格式或线路不符）"),
    (rf"^{_BATCH}: the row holds {_BATCH}$", r"数据流 \2 第 \1 批的位置存放的是数据流 \4 第 \3 批"),
    (rf"^{_BATCH} does not chain to batch (\d+)$", r"哈希链断裂：数据流 \2 第 \1 批未衔接第 \3 批"),
    (r"^the stored digest \S+ differs from \S+ recomputed from the evidence$", "办件存储的摘要与按证据重算的不符"),
    (
        r"^action (\S+) is in the store's history but no stored batch carries it$",
        r"操作 \1 在库内历史记录中，但没有任何已存数据包承载它",
    ),
    (r"^the bundle is malformed: ", "证据包结构有误"),
    (r"^not a Sanji evidence bundle", "不是三级联办的证据包（format 字段不符）"),
    (r"^key (\S+) of (\S+): the key id does not belong to that public key$", r"节点 \2 的密钥 \1：密钥编号与公钥不符"),
    (
        r"^key (\S+) of (\S+) in the bundle is not that node's key in the directory$",
        r"证据包中节点 \2 的密钥 \1 与节点目录中该节点的密钥不符",
    ),
    (
        r"^node (\S+): role or parent in the bundle differ from the directory$",
        r"节点 \1：证据包中的层级或上级与节点目录不符",
    ),
    (
        rf"^{_BATCH}: the frame hashes to \S+, not to the hash the bundle gives$",
        r"数据流 \2 第 \1 批：内容的哈希值与证据包所列不符",
    ),
    (rf"^{_BATCH}: the frame is {_BATCH}$", r"数据流 \2 第 \1 批：实为数据流 \4 第 \3 批"),
    (rf"^{_BATCH}: the bundle gives no chain of ", r"数据流 \2 第 \1 批：证据包未给出到该批为止的哈希链"),
    (rf"^{_BATCH}: the chain lists ", r"哈希链断裂：数据流 \2 第 \1 批的哈希值与哈希链所列不符"),
    (rf"^{_BATCH} names \S+ as its predecessor, ", r"哈希链断裂：数据流 \2 第 \1 批所指的前一批哈希值与哈希链不符"),
    (r"^the history lists an action twice$", "历史记录中有操作重复列出"),
    (r"^unsealed action (\S+): its body is another action$", r"未封批的操作 \1：其内容是另一条操作"),
    (
        r"^unsealed action (\S+): the history's copy differs from its body$",
        r"未封批的操作 \1：历史记录中的副本与其内容不符",
    ),
    (
        r"^action (\S+) is in the node's history, but no signed batch carries it$",
        r"操作 \1 在节点的历史记录中，但没有任何签名数据包承载它",
    ),
    (r"^action (\S+) is listed as (\S+), but no frame", r"操作 \1 标为 \2，但证据包中没有相应的数据包承载它"),
    (r"^action (\S+): unknown evidence ", r"操作 \1：证据类别不明"),
    (r"^action (\S+), signed in .+, is missing from the history$", r"已签名的操作 \1 在历史记录中缺失"),
    (r"^action (\S+): the history's copy differs from the signed one$", r"操作 \1：历史记录中的副本与签名原件不符"),
    (r"^action (\S+): (.+) in the history differ from the signed action$", r"操作 \1：历史记录中的 \2 与签名原件不符"),
    (r"^action (\S+): the time shown ", r"操作 \1：显示的时间与签名时间不符"),
    (r"^action (\S+): node name or role in the history differ ", r"操作 \1：历史记录中的节点名称或层级与节点目录不符"),
    (r"^action (\S+): the batches the history names ", r"操作 \1：历史记录所列的批次不是实际承载它的批次"),
    (
        r"^action (\S+): status (.+) in the history, but the actions make it (.+)$",
        r"操作 \1：历史记录中的状态为 \2，按操作推算应为 \3",
    ),
    (r"^the bundle's digest \S+ does not follow from its actions", "证据包所列摘要与其操作推算的不符"),
    (r"^the exporting node's stored digest \S+ differs from the evidence", "导出节点存储的摘要与证据不符"),
    (r"^the state in the bundle is not the state the actions give$", "证据包中的办件状态与其操作推算的不符"),
    (
        r"^the public keys were taken from the bundle itself; .*directory \((.*)\), or pass --directory$",
        r"公钥取自证据包本身；请核对这些密钥编号是否在本县节点目录中（\1），或用 --directory 给出节点目录",
    ),
    (
        r"^(\d+) action\(s\) were not sealed into a signed batch ",
        r"导出证据包时有 \1 条操作尚未封入签名数据包，只有导出节点为其作保",
    ),
)
_BUNDLE_RES = tuple((re.compile(pattern), zh) for pattern, zh in _BUNDLE)
_REPORTED = "the exporting node reported: "


def _place(problem: Problem) -> str:
    where = [w for w in (problem.stream and f"数据流 {problem.stream}", problem.seq and f"第 {problem.seq} 批") if w]
    if problem.errand:
        where.append(f"办件 {problem.errand}")
    return "，".join(where)


def store_problem_pair(problem: Problem) -> Pair:
    """A problem of ``sanji verify store``: its place and kind in Chinese, then its English line whole."""
    place, kind = _place(problem), KINDS_ZH.get(problem.kind, OTHER_ZH)
    return Pair(f"{place}：{kind}" if place else kind, str(problem))


def bundle_zh(text: str) -> str:
    """A bundle's problem or note (or an export's warning) in Chinese; ``OTHER_ZH`` for a wording no table names."""
    if text.startswith(_REPORTED):
        return "导出节点报告：" + bundle_zh(text[len(_REPORTED) :])
    for pattern, zh in _BUNDLE_RES:
        if found := pattern.match(text):
            return found.expand(zh)
    return OTHER_ZH
