"""C2SP tlog-checkpoints (https://c2sp.org/tlog-checkpoint): a tree head in a signed note.

origin "\n" decimal tree size "\n" base64(root hash) "\n" (extension line "\n")*
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audit import b64
from audit.merkle import HASH_SIZE
from audit.note import Signer, Verifier, parse_note, sign_note

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class CheckpointError(ValueError):
    """A checkpoint body that does not follow the format."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        lines = (self.origin, *self.extensions)
        if not all(lines) or any("\n" in line for line in lines):
            raise CheckpointError("the origin and extension lines must be non-empty lines")
        if not 0 <= self.size < 1 << 64:
            raise CheckpointError(f"tree size {self.size} does not fit in 64 bits")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"the root hash must be {HASH_SIZE} bytes")

    def body(self) -> str:
        lines = (self.origin, str(self.size), b64.encode(self.root_hash), *self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        if not body.endswith("\n"):
            raise CheckpointError("a checkpoint body ends with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has an origin, a tree size and a root hash")
        origin, size, root_hash, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"tree size {size!r} is not a decimal without leading zeros")
        try:
            raw = b64.decode(root_hash)
        except ValueError as e:
            raise CheckpointError(f"root hash {root_hash!r}: {e}") from None
        return cls(origin, int(size), raw, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> str:
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(
    note: str | bytes, verifiers: Iterable[Verifier]
) -> tuple[Checkpoint, list[Verifier]]:
    """The checkpoint of a signed note and the known keys that signed it."""
    parsed = parse_note(note)
    signed = parsed.verified_by(verifiers)
    return Checkpoint.parse(parsed.text), signed
