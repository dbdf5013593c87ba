"""What a desk may attach to an errand: a photo or a scan, as a phone's camera or a scanner makes them.

Asked by every surface that takes an attachment (the errand page's 附件 form, ``POST /api/errands/{id}/attachments``
and an ``attach`` step naming bytes already held), before anything is kept or signed. A web page, a program or a
document of an office suite is not a scan of a villager's papers, and would travel to every node on the errand's
path. Not asked by ``judge``: what was attached before this rule stays valid everywhere.
"""

from __future__ import annotations

from protocol.refusals import Refusal, refuse

SCAN_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/tiff", "application/pdf")


def scan_type(declared: str) -> str:
    """The media type a request or an upload declares, without its parameters, in lower case."""
    return declared.split(";")[0].strip().lower()


def scan_type_refusal(declared: str) -> Refusal | None:
    """Why a file declared as ``declared`` may not be attached, or None for a photo or a scan."""
    kind = scan_type(declared)
    return None if kind in SCAN_TYPES else refuse("attachment_type", mime=kind[:100] or "?")
