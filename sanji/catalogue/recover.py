"""Taking back a catalogue version a county lost in a restore, from a node below that still holds it.

A county put back from an older copy (``sanji restore``) records the versions it may have published since as lost
(``sanji.store.documents.LOST``); errands bound to them cannot be checked (无法核对). The townships and villages
below kept every version they held, as the county signed it. Such a copy, carried up as a file (``sanji catalogue
export`` at the child), is taken back only if the county's own key signed it (a key this county holds, not
revoked: an altered byte or another node's key is refused) and its version lies in a lost range and is not
recorded here (``Documents.recover_version``); anything else changes nothing. The verdict is the county's: a file
from below is evidence, never trusted by where it came from.
"""

from __future__ import annotations

import logging

import msgspec

from protocol.catalogue import catalogue_digest, open_catalogue, publisher_keys
from protocol.errors import SanjiError
from protocol.topology import COUNTY
from sanji.store import Store
from sanji.store.documents import LOST

log = logging.getLogger("sanji.catalogue")
CATALOGUE = "catalogue"


class RecoveryRefused(SanjiError):
    """The file is not taken back: why, in Chinese (``zh``) and English (the message)."""

    code = "catalogue_recovery_refused"

    def __init__(self, message: str, *, zh: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.zh = zh


class Recovered(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    digest: str
    lost_before: str  # the ranges recorded as lost, before and after ("" : none)
    lost_after: str


async def recover_catalogue(store: Store, blob: bytes) -> Recovered:
    """Re-file ``blob`` as the county's catalogue of the version it names, or raise ``RecoveryRefused``."""
    directory = store.directory
    if store.node_id not in directory or directory.role(store.node_id) != COUNTY:
        raise RecoveryRefused(
            f"{store.node_id} is not a county: only the county that published a catalogue takes one back",
            zh=f"{store.node_id} 不是县级节点：只有发布目录的县级中心才能找回目录版本",
        )
    try:
        catalogue = open_catalogue(blob, publisher_keys(directory, store.node_id), publisher=store.node_id)
    except SanjiError as exc:
        raise RecoveryRefused(
            f"not this county's signed catalogue: {exc.message}",
            zh=f"该文件不是本县签发的目录（签名或内容核验未通过，未作任何改动）：{exc.message}",
            hint="Export it again at the township or village: `sanji catalogue export --version N`.",
        ) from None
    version, digest = catalogue.version, catalogue_digest(blob)
    before = await store.meta_value(CATALOGUE + LOST) or ""
    outcome = await store.recover_version(CATALOGUE, version, blob, digest)
    if outcome == "held":
        raise RecoveryRefused(
            f"catalogue version {version} is held here already, with these very bytes: nothing to do",
            zh=f"本中心已持有第 {version} 版目录（内容相同），无需找回",
        )
    if outcome == "held_otherwise":
        raise RecoveryRefused(
            f"catalogue version {version} is held here with other bytes (sha256 differs); the held one is kept",
            zh=f"本中心持有的第 {version} 版目录与该文件不同，保留本中心持有的版本，未作改动",
            hint="Two signed documents of one version: keep both files and tell the county's administrator.",
        )
    if outcome == "lost_unreadable":
        raise RecoveryRefused(
            f"meta catalogue_versions_lost is {before!r}, not ranges of versions: repair it first",
            zh=f"记录丢失版本的 catalogue_versions_lost 无法读取（{before[:40]}），请先修复",
        )
    if outcome == "not_lost":
        shown = before or "无 none"
        raise RecoveryRefused(
            f"catalogue version {version} is not among the versions a restore lost ({shown}): this county knows "
            "whether it published it, and it is not taken from below",
            zh=f"第 {version} 版目录不在恢复后无法核对的版本之内（{shown}）：本中心清楚是否发布过该版本，不从下级找回",
        )
    after = await store.meta_value(CATALOGUE + LOST) or ""
    log.info("catalogue version %s taken back (sha256 %s); lost now %r", version, digest, after)
    return Recovered(version=version, digest=digest, lost_before=before, lost_after=after)
