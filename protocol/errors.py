"""The one error tree every node speaks.

    SanjiError                 message, hint, retryable
    ├── FrameError             the bytes are not a well-formed batch (never retry)
    │   ├── FrameTooLarge
    │   └── UnsupportedFormat
    ├── SignatureError         unknown key, wrong key, bad signature (never retry)
    │   └── RevokedKey         signed by a key retired before that point (quarantined)
    ├── ChainError             the batch does not follow its predecessor
    │   ├── ChainGap           a predecessor is missing (retry after sending it)
    │   └── ChainFork          same number, different content (never retry)
    ├── RouteError             the batch is not for this node's place in the tree
    ├── ActionRefused          the errand rules forbid this action (never retry)
    ├── VersionTooFar          a county document published too far above the version held (never retry)
    └── VersionNotNewer        a county document published at a version not above the one held (never retry)

Only errors with ``retryable=True`` are worth repeating unchanged.
"""

from __future__ import annotations

from protocol.refusals import Refusal, bilingual, refuse


class SanjiError(Exception):
    """Base error: what happened, what to do about it, and whether a retry can help."""

    code = "error"
    retryable = False
    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if retryable is not None:
            self.retryable = retryable

    def as_dict(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message, "hint": self.hint, "retryable": self.retryable}


class FrameError(SanjiError):
    code = "malformed_batch"
    default_hint = "The batch bytes are damaged or not a Sanji batch; re-export it from the origin node."


class FrameTooLarge(FrameError):
    code = "batch_too_large"
    default_hint = "Split the backlog into smaller batches; see protocol.limits."


class UnsupportedFormat(FrameError):
    code = "unsupported_format"
    default_hint = "Upgrade this node: the sender uses a newer batch format."


class SignatureError(SanjiError):
    code = "bad_signature"
    default_hint = "The batch was altered or signed by a key this node does not trust; it was not applied."


class RevokedKey(SignatureError):
    """Signed with a key retired (revoked or rotated away) before this batch's position in its stream."""

    code = "revoked_key"
    default_hint = (
        "The batch is signed with a key that was revoked or replaced before it; it was quarantined, not applied. "
        "If the node is genuine, re-enroll it or let it finish its key rotation, then it signs anew."
    )

    def __init__(self, message: str, *, origin: str = "", scope: str = "", seq: int = 0) -> None:
        super().__init__(message)
        self.origin, self.scope, self.seq = origin, scope, seq


class ChainError(SanjiError):
    code = "chain_broken"
    default_hint = "The batch does not follow the previous batch of its stream."


class ChainGap(ChainError):
    code = "chain_gap"
    retryable = True
    default_hint = "Send the missing earlier batches first; this one is held until they arrive."


class ChainFork(ChainError):
    code = "chain_fork"
    default_hint = (
        "Two different batches carry the same number in one stream: the origin may have been "
        "restored from a backup or cloned. The batch was quarantined for an administrator."
    )


class RouteError(SanjiError):
    code = "wrong_route"
    default_hint = "This node is not on the path of that stream; send it towards its audience."


class ActionRefused(SanjiError):
    """The errand's rules refuse a step; ``refusal`` carries the stable code and its facts.

    Built from a ``Refusal`` (what ``judge()`` returns) or, for old callers, from text
    (code ``other``). ``as_dict`` adds ``error_code``, ``params`` and the Chinese wording,
    so a client never has to read the English sentence.
    """

    code = "action_refused"
    default_hint = "The errand's rules do not allow this action here and now."

    def __init__(self, reason: str | Refusal, *, hint: str | None = None, retryable: bool | None = None) -> None:
        self.refusal = reason if isinstance(reason, Refusal) else refuse("other", message=reason)
        super().__init__(str(reason), hint=hint, retryable=retryable)

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        zh, _ = bilingual(self.refusal)
        out["error_code"] = self.refusal.code
        out["params"] = dict(self.refusal.params)
        out["message_zh"] = zh
        return out


class VersionTooFar(SanjiError):
    """A county would publish a catalogue, calendar or assessment rules more than ``MAX_VERSION_STEP`` versions
    above the one it holds (``protocol.bounds.check_version_step``): each publication must be newer than the
    last, so a version near the top of the range would be the last ever published.

    ``message`` says it in both languages, Chinese first (the command line and the log print it);
    ``message_zh`` and ``message_en`` are its two halves, for a screen that sets them apart. ``as_dict`` adds
    ``error_code``, ``params`` (held, version) and ``message_zh``, as an ``ActionRefused`` does, so a client
    reads the refusal without parsing the sentence.
    """

    code = "version_too_far"

    def __init__(self, message: str, *, held: int, version: int, zh: str = "", en: str = "") -> None:
        super().__init__(message, hint=f"Publish version {held + 1}.")
        self.held, self.version = held, version
        self.message_zh, self.message_en = zh, en or message

    @property
    def error_code(self) -> str:
        return self.code

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["error_code"] = self.error_code
        out["params"] = {"held": self.held, "version": self.version}
        if self.message_zh:
            out["message_zh"] = self.message_zh
        return out


class VersionNotNewer(SanjiError):
    """A county would publish a catalogue, calendar or assessment rules at a version not above the one the
    database holds: refused, nothing signed is kept.

    ``NodeContext.publish``, ``publish_calendar`` and ``publish_rules`` raise it when the write transaction that
    would keep the document finds the version already held (``Store.put_document`` returned False): two
    administrators publishing the same next version at once — on one process or on several sharing a
    PostgreSQL database — have one kept and the other told so, as if he had published after. ``held`` is the
    version the database holds; ``document`` is ``catalogue``, ``calendar`` or ``assessment_rules``.
    """

    code = "version_not_newer"

    def __init__(self, document: str, *, held: int, version: int) -> None:
        zh = f"版本 {version} 不高于本中心所持的版本 {held}，未发布，请提高版本号"
        en = f"{document} version {version} is not newer than the version held ({held}); nothing was published"
        super().__init__(f"{zh} {en}", hint=f"Publish version {held + 1} or higher.")
        self.document, self.held, self.version = document, held, version
        self.message_zh, self.message_en = zh, en

    @property
    def error_code(self) -> str:
        return self.code

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["error_code"] = self.error_code
        out["params"] = {"document": self.document, "held": self.held, "version": self.version}
        out["message_zh"] = self.message_zh
        return out
