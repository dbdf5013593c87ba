"""Joining the tree: a one-time token from the parent, exchanged for a certificate.

The parent's director issues a token for one node (``sanji enroll issue`` or the enrollment
screen). The token is shown as text and as a QR code and carried to the new machine by hand
(or read off the screen by the agent's phone). It holds:

* the parent's id and the new node's id and role — where the node will sit;
* a 16-byte random secret that never crosses the network: the enrollment request names the
  token by the secret's hash and carries ``HMAC-SHA256(secret, request)``, so whoever watches
  the link can neither reuse the token nor swap the keys in the request;
* the fingerprint of the county's root — the new node checks the root it is handed against
  it, so a parent impostor cannot hand it another root of trust.

The request also carries the new node's public keys, signed by its new signing key (proof
that it holds the key), and its database instance id, which the certificate binds it to: a
copy of the key on another database, or the database on another install, is told apart.

A token works once and expires (seven days by default).

Which id and name a parent may give a new node is decided here (``new_node_problem``, ``node_name_problem``),
asked by ``TrustBook.issue_token`` (the enrollment screen and ``sanji enroll issue`` both go through it) and by
the screen's form for its field messages: an id must not read as another id of the tree (case, O/0, I/1/l), and
under a city every id below a county starts with its parent's (README: a deeper tree keeps ids unique so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from collections.abc import Iterable

import msgspec

from protocol.bounds import node_id_problem
from protocol.errors import SanjiError
from protocol.names import invisible
from protocol.signing import ED25519, KeyRecord, SigningKey, verify
from protocol.topology import COUNTY, TOWN

TOKEN_PREFIX = "SJE1"
SECRET_BYTES = 16
TOKEN_VALID_DAYS = 7
_encoder = msgspec.msgpack.Encoder(order="deterministic")


class EnrollmentError(SanjiError):
    code = "enrollment_refused"
    default_hint = (
        "Ask the parent node's director for a new enrollment token: tokens work once, for one node, and expire."
    )


# A desk reads ids aloud, types them from paper and compares them by eye: these read as one another.
_LOOK_ALIKE = str.maketrans({"o": "0", "i": "1", "l": "1"})


def id_fold(node: str) -> str:
    """What two node ids that read alike have in common: case, full and half width, O/0, I/1/l alike."""
    return unicodedata.normalize("NFKC", node).casefold().translate(_LOOK_ALIKE)


def new_node_problem(
    node: str, *, parent: str, parent_role: str, under_region: bool, known: Iterable[str]
) -> str | None:
    """Why ``parent`` may not give a new node the id ``node`` (Chinese, then English), or None.

    ``known``: every id this node knows in the tree (its directory, the certificates it holds, the tokens it has
    issued and not seen redeemed); the same id again is a replacement computer, not a look-alike.
    ``under_region``: a city (or province) is above ``parent``; then below a county every id starts with its
    parent's, as the README requires, so two counties never mint the same id apart.
    """
    if problem := node_id_problem(node):
        return problem
    folded = id_fold(node)
    twin = next((k for k in known if k != node and id_fold(k) == folded), None)
    if twin is not None:
        return (
            f"节点编号 {node} 与已有的 {twin} 只差大小写或形近字符（O/0、I/1/l），容易认错，请另选编号。"
            f"Node id {node} differs from {twin}, already in the tree, only by case or look-alike characters "
            "(O/0, I/1/l); choose another id."
        )
    if under_region and parent_role in (COUNTY, TOWN) and not (node.startswith(parent) and len(node) > len(parent)):
        return (
            f"上有市级中心时，县以下的节点编号须以上级编号 {parent} 开头（如 {parent}T01、{parent}V01）。"
            f"Under a city, an id below a county starts with its parent's id {parent} (e.g. {parent}T01, {parent}V01)."
        )
    return None


def node_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new node on screens and certificates (Chinese, then English), or None.

    A node may go unnamed (""); a name that shows as nothing, or as someone else's, may not."""
    if any(invisible(c) for c in name):
        return (
            "名称含控制字符或不可见字符（如零宽空格），请重新输入。"
            "The name holds a control or invisible character (a zero-width space, say); type it again."
        )
    if name and name.isspace():
        return "名称不能只有空格。The name cannot be only spaces."
    return None


class Token(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    parent: str
    node: str
    role: str
    secret: bytes
    root: str  # root fingerprint (protocol.trust.root_fingerprint)

    @property
    def token_hash(self) -> str:
        return token_hash(self.secret)


def token_hash(secret: bytes) -> str:
    return hashlib.sha256(b"sanji enrollment token\x00" + secret).hexdigest()


def new_token(*, parent: str, node: str, role: str, root: str) -> Token:
    return Token(parent=parent, node=node, role=role, secret=os.urandom(SECRET_BYTES), root=root)


def encode_token(token: Token) -> str:
    """Text to type or scan: ``SJE1-`` and groups of five base32 characters (no 0/1/8 confusion: RFC 4648)."""
    raw = _encoder.encode(token)
    check = hashlib.sha256(raw).digest()[:2]  # catches a mistyped character before any network use
    text = base64.b32encode(raw + check).decode().rstrip("=")
    groups = [text[i : i + 5] for i in range(0, len(text), 5)]
    return TOKEN_PREFIX + "-" + "-".join(groups)


def decode_token(text: str) -> Token:
    cleaned = "".join(text.split()).replace("-", "").upper()
    if not cleaned.startswith(TOKEN_PREFIX):
        raise EnrollmentError(f"not a Sanji enrollment token (it should start with {TOKEN_PREFIX}-)")
    body = cleaned[len(TOKEN_PREFIX) :]
    try:
        data = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        raise EnrollmentError("the enrollment token has a character that is not in its alphabet (A-Z, 2-7)") from None
    raw, check = data[:-2], data[-2:]
    if len(data) < 3 or hashlib.sha256(raw).digest()[:2] != check:
        raise EnrollmentError("the enrollment token is mistyped (its check characters do not match)")
    try:
        token = msgspec.msgpack.decode(raw, type=Token)
    except msgspec.DecodeError:
        raise EnrollmentError("the enrollment token does not decode") from None
    if len(token.secret) != SECRET_BYTES:
        raise EnrollmentError("the enrollment token's secret has the wrong length")
    return token


class EnrollRequest(msgspec.Struct, frozen=True, kw_only=True):
    token_hash: str
    node: str
    role: str
    name: str = ""
    keys: tuple[KeyRecord, ...]
    instance: str
    possession: bytes = b""  # the new signing key's signature over the request (without the two proofs)
    proof: bytes = b""  # HMAC-SHA256(token secret, request without the proof)

    def _unsigned(self) -> bytes:
        return _encoder.encode(msgspec.structs.replace(self, possession=b"", proof=b""))

    def _unproved(self) -> bytes:
        return _encoder.encode(msgspec.structs.replace(self, proof=b""))


class EnrollResponse(msgspec.Struct, frozen=True, kw_only=True):
    certificate: bytes  # the node's certificate, signed by the parent
    bundle: tuple[bytes, ...]  # every root version and the certificates of the path above it


def make_request(
    token: Token, *, key: SigningKey, keys: tuple[KeyRecord, ...], instance: str, name: str = ""
) -> EnrollRequest:
    request = EnrollRequest(
        token_hash=token.token_hash, node=token.node, role=token.role, name=name, keys=keys, instance=instance
    )
    request = msgspec.structs.replace(request, possession=key.sign(request._unsigned()))
    proof = hmac.new(token.secret, request._unproved(), hashlib.sha256).digest()
    return msgspec.structs.replace(request, proof=proof)


def check_request(request: EnrollRequest, *, secret: bytes, expected_node: str, expected_role: str) -> None:
    """What the parent checks once it found the token by ``request.token_hash``."""
    if not hmac.compare_digest(request.token_hash, token_hash(secret)):
        raise EnrollmentError("the enrollment token is not known here")
    expected = hmac.new(secret, request._unproved(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, request.proof):
        raise EnrollmentError("the enrollment request was not made with the token's secret, or was altered on the way")
    if request.node != expected_node or request.role != expected_role:
        raise EnrollmentError(
            f"the token was issued for {expected_node} ({expected_role}), not {request.node} ({request.role})"
        )
    signing = [k for k in request.keys if k.algorithm == ED25519]
    if len(signing) != 1 or any(k.node != request.node for k in request.keys):
        raise EnrollmentError("an enrollment lists exactly one signing key, and only keys of the node enrolling")
    if not request.instance:
        raise EnrollmentError("the enrolling node did not name its database instance")
    try:
        verify(signing[0], request._unsigned(), request.possession)
    except SanjiError:
        raise EnrollmentError("the enrolling node did not prove it holds the signing key it lists") from None
