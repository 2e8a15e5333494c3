"""C2SP tlog-checkpoint bodies and their signed notes."""

import pytest

from audit import merkle
from audit.checkpoint import Checkpoint, CheckpointError, open_checkpoint, sign_checkpoint
from audit.note import NoteError, Signer
from tests.audit.testdata import MERKLE, load

ROOT = merkle.EMPTY_ROOT
ROOT_B64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_spec_example_body_parses() -> None:
    example = load(MERKLE / "c2sp_signed_note_ed25519.json")
    body = example["checkpoint_example_unverifiable_without_key"].split(" (")[0]
    checkpoint = Checkpoint.parse(body)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.body() == body


def test_body_layout_and_round_trip() -> None:
    checkpoint = Checkpoint("log.example/a", 0, ROOT, ("ext one", "two"))
    assert checkpoint.body() == f"log.example/a\n0\n{ROOT_B64}\next one\ntwo\n"
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_sign_and_open() -> None:
    signer, other = Signer.generate("log.example/a"), Signer.generate("log.example/b")
    checkpoint = Checkpoint("log.example/a", 12, ROOT)
    note = sign_checkpoint(checkpoint, [signer, other])
    assert open_checkpoint(note, [signer.verifier]) == (checkpoint, [signer.verifier])
    assert open_checkpoint(note.encode(), [other.verifier])[0] == checkpoint
    with pytest.raises(NoteError):
        open_checkpoint(note.replace("\n12\n", "\n13\n"), [signer.verifier])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"o\n1\n{ROOT_B64}", "ends with a newline"),
        ("o\n1\n", "an origin, a tree size and a root hash"),
        (f"o\n01\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n+1\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n1 \n{ROOT_B64}\n", "leading zeros"),
        (f"o\n\uff11\n{ROOT_B64}\n", "leading zeros"),  # fullwidth digit one
        (f"o\n{2**64}\n{ROOT_B64}\n", "64 bits"),
        (f"o\n{10**21}\n{ROOT_B64}\n", "leading zeros"),
        ("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n", "not canonical"),
        ("o\n1\nAAAA\n", "32 bytes"),
        (f"\n1\n{ROOT_B64}\n", "non-empty"),
        (f"o\n1\n{ROOT_B64}\n\n", "non-empty"),
    ],
)
def test_parse_is_strict(body: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse(body)


def test_construction_is_checked() -> None:
    with pytest.raises(CheckpointError, match="non-empty"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="64 bits"):
        Checkpoint("a", -1, ROOT)
