"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

note         = text "\n" signature-line+       text ends with "\n"
signature    = "— " key-name " " base64(key ID (4 bytes) || Ed25519 signature of text)
key ID       = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
verifier key = key-name "+" hex(key ID) "+" base64(0x01 || public key)
signer key   = "PRIVATE+KEY+" key-name "+" hex(key ID) "+" base64(0x01 || private seed)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit import b64

ED25519 = 0x01
# The spec asks for at least 16; a cap keeps a hostile note from costing unbounded work.
MAX_SIGNATURES = 100
_DASH = "— "
_HEX_ID = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify."""


def check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() or c < " " for c in name):
        raise NoteError(f"key name {name!r} is empty or holds a space, a control or a '+'")
    _check_utf8(name, f"key name {name!r}")


def _check_utf8(text: str, what: str) -> None:
    # A str can hold lone surrogates (from a JSON escape, or undecodable bytes in argv).
    try:
        text.encode()
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid Unicode text") from None


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes((ED25519,)) + public_key).digest()[:4]


def _key_parts(text: str, what: str) -> tuple[str, bytes, bytes]:
    """name, key ID, key bytes of `name+hexid+base64(0x01||key)`, the ID not yet checked."""
    parts = text.split("+", 2)
    try:
        name, hex_id, encoded = parts
        check_key_name(name)
        raw = b64.decode(encoded)
    except ValueError:
        raise NoteError(f"not a {what}: expected name+hex key ID+base64 key") from None
    if not _HEX_ID.fullmatch(hex_id) or len(raw) != 33 or raw[0] != ED25519:
        raise NoteError(f"not an Ed25519 {what}: {name}+{hex_id}")
    return name, bytes.fromhex(hex_id), raw[1:]


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64.encode(bytes((ED25519,)) + self.public_key)}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, kid, public_key = _key_parts(vkey, "verifier key")
        verifier = cls(name, public_key)
        if verifier.key_id != kid:
            raise NoteError(f"verifier key {name}+{kid.hex()}: the key ID does not match the key")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Signer:
    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = Verifier(name, public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        if not skey.startswith("PRIVATE+KEY+"):
            raise NoteError("not a signer key: expected PRIVATE+KEY+name+hex key ID+base64 key")
        name, kid, seed = _key_parts(skey.removeprefix("PRIVATE+KEY+"), "signer key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.verifier.key_id != kid:
            raise NoteError(f"signer key {name}+{kid.hex()}: the key ID does not match the key")
        return signer

    def encode(self) -> str:
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        kid = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{kid}+{b64.encode(bytes((ED25519,)) + seed)}"

    def __repr__(self) -> str:
        return f"Signer({self.verifier})"

    def sign(self, text: str) -> Signature:
        return Signature(self.name, self.verifier.key_id, self._key.sign(text.encode()))


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {b64.encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def verified_by(self, verifiers: Iterable[Verifier]) -> list[Verifier]:
        """The known keys that signed. Signatures by unknown keys are ignored; a known key's
        bad signature, or no known key at all, rejects the note."""
        known = {(v.name, v.key_id): v for v in verifiers}
        text = self.text.encode()
        signed: list[Verifier] = []
        for sig in self.signatures:
            verifier = known.get((sig.name, sig.key_id))
            if verifier is None:
                continue
            if not verifier.verify(text, sig.signature):
                raise NoteError(f"the signature by {verifier} does not verify")
            if verifier not in signed:
                signed.append(verifier)
        if not signed:
            raise NoteError("no signature by a known key")
        return signed


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    if not signers:
        raise NoteError("a note needs at least one signer")
    _check_text(text)
    if not text.endswith("\n"):
        raise NoteError("the note text must end with a newline")
    return text + "\n" + "".join(s.sign(text).line() for s in signers)


def _check_text(text: str) -> None:
    if _CONTROL.search(text):
        raise NoteError("the note holds a control character other than newline")
    _check_utf8(text, "the note")


def parse_note(note: str | bytes) -> Note:
    """Structure only: the signatures are checked by `Note.verified_by`."""
    if isinstance(note, bytes):
        try:
            note = note.decode()
        except UnicodeDecodeError:
            raise NoteError("the note is not UTF-8") from None
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("the note has no signature block after a blank line")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        name, space, encoded = line.removeprefix(_DASH).partition(" ")
        try:
            if not line.startswith(_DASH) or not space:
                raise ValueError
            check_key_name(name)
            raw = b64.decode(encoded)
        except ValueError:
            raise NoteError(f"malformed signature line {line!r}") from None
        if len(raw) < 5:
            raise NoteError(f"signature line {line!r} is too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))
