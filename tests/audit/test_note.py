"""C2SP signed notes: the spec's Ed25519 example, key strings, strict parsing."""

import base64
import hashlib

import pytest

from audit.note import (
    MAX_SIGNATURES,
    NoteError,
    Signer,
    Verifier,
    key_id,
    parse_note,
    sign_note,
)
from tests.audit.testdata import MERKLE, load

EXAMPLE = load(MERKLE / "c2sp_signed_note_ed25519.json")
# A key pair published with transparency-dev's example log (README of its bt-log): written by
# Go's golang.org/x/mod/sumdb/note, so it checks the key string formats against another
# implementation.
GO_SIGNER = (
    "PRIVATE+KEY+binarytransparency.log/example+5de0f997+"
    "AXNNv9racVtMynH7oHIogZ4xS5sAIHBl47hlrcf6vsfu"
)
GO_VERIFIER = "binarytransparency.log/example+5de0f997+AcPfp2roeTxqSqmPdDkA9rIAd0pe3C5Je6Rze2SqBDUp"


def test_spec_example_verifies() -> None:
    verifier = Verifier.parse(EXAMPLE["vkey"])
    assert str(verifier) == EXAMPLE["vkey"]
    note = parse_note(EXAMPLE["note"])
    assert note.text == EXAMPLE["note_text_signed"]
    assert note.verified_by([verifier]) == [verifier]
    assert parse_note(EXAMPLE["note"].encode()) == note


def test_spec_example_key_id_follows_the_rule() -> None:
    verifier = Verifier.parse(EXAMPLE["vkey"])
    expected = hashlib.sha256(b"example.com/foo\n\x01" + verifier.public_key).digest()[:4]
    assert key_id("example.com/foo", verifier.public_key) == expected == verifier.key_id
    assert verifier.key_id.hex() == EXAMPLE["vkey"].split("+")[1]


def test_spec_example_tampered_fails() -> None:
    verifier = Verifier.parse(EXAMPLE["vkey"])
    tampered = parse_note(EXAMPLE["note"].replace("example message", "example massage"))
    with pytest.raises(NoteError, match="does not verify"):
        tampered.verified_by([verifier])


def test_go_key_strings() -> None:
    signer = Signer.parse(GO_SIGNER)
    assert str(signer.verifier) == GO_VERIFIER
    assert signer.encode() == GO_SIGNER
    assert repr(signer) == f"Signer({GO_VERIFIER})"


def test_sign_and_verify_with_several_keys() -> None:
    a, b, stranger = (Signer.generate(n) for n in ("log.example/a", "log.example/b", "x.example"))
    note = sign_note("hello\n\nworld\n", [a, b])
    parsed = parse_note(note)
    assert parsed.text == "hello\n\nworld\n"
    assert [s.name for s in parsed.signatures] == ["log.example/a", "log.example/b"]
    assert parsed.verified_by([b.verifier, stranger.verifier]) == [b.verifier]
    assert parsed.verified_by([a.verifier, b.verifier]) == [a.verifier, b.verifier]
    doubled = parse_note(note + a.sign("hello\n\nworld\n").line())
    assert doubled.verified_by([a.verifier]) == [a.verifier]
    with pytest.raises(NoteError, match="no signature by a known key"):
        parsed.verified_by([stranger.verifier])


def test_same_name_other_key_is_ignored_not_failed() -> None:
    signer, impostor = Signer.generate("log.example"), Signer.generate("log.example")
    note = parse_note(sign_note("t\n", [impostor, signer]))
    assert note.verified_by([signer.verifier]) == [signer.verifier]


def test_known_key_with_a_bad_signature_rejects_the_note() -> None:
    signer = Signer.generate("log.example")
    good = signer.sign("t\n")
    forged = good.line().replace(
        base64.b64encode(good.key_id + good.signature).decode(),
        base64.b64encode(good.key_id + bytes(64)).decode(),
    )
    note = parse_note("t\n\n" + good.line() + forged)
    with pytest.raises(NoteError, match="does not verify"):
        note.verified_by([signer.verifier])
    short = parse_note("t\n\n" + good.line().split(" ")[0] + " log.example " +
                       base64.b64encode(good.key_id + b"x").decode() + "\n")  # fmt: skip
    with pytest.raises(NoteError, match="does not verify"):
        short.verified_by([signer.verifier])


SIG = "— log.example AAAAAAE=\n"


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (b"t\n\n\xff\n", "not UTF-8"),
        ("t\r\n\n" + SIG, "control character"),
        ("t\ud800\n\n" + SIG, "not valid Unicode"),
        ("t\n\n" + SIG.replace(" A", "\tA"), "control character"),
        ("t\n" + SIG, "no signature block"),
        ("t\n\n" + SIG[:-1], "no signature block"),
        ("t\n\n", "malformed signature line"),
        ("t\n\n" + SIG + "\n", "malformed signature line"),
        ("t\n\n- log.example AAAAAAE=\n", "malformed signature line"),
        ("t\n\n—log.example AAAAAAE=\n", "malformed signature line"),
        ("t\n\n— log+example AAAAAAE=\n", "malformed signature line"),
        ("t\n\n—  AAAAAAE=\n", "malformed signature line"),
        ("t\n\n— log.example\n", "malformed signature line"),
        ("t\n\n— log.example AAAAAAE\n", "malformed signature line"),
        ("t\n\n— log.example AAAAAAF=\n", "malformed signature line"),
        ("t\n\n— log.example AAAAAA==\n", "too short"),
        ("t\n\n" + SIG * (MAX_SIGNATURES + 1), "more than 100"),
    ],
)
def test_parse_is_strict(note: str | bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_note(note)


def test_parse_accepts_many_signatures() -> None:
    assert len(parse_note("t\n\n" + SIG * MAX_SIGNATURES).signatures) == MAX_SIGNATURES


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("example.com/foo", "not a verifier key"),
        ("example.com/foo+530d903a", "not a verifier key"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not a verifier key"),
        ("exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not a verifier key"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2", "not a verifier"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not an Ed25519"),
        ("example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not an Ed25519"),
        ("example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not an Ed25519"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3Q==", "not an Ed25519"),
        (
            "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key ID does not",
        ),
    ],
)
def test_verifier_key_parse_is_strict(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Verifier.parse(vkey)


def test_signer_key_parse_is_strict() -> None:
    with pytest.raises(NoteError, match="not a signer key"):
        Signer.parse(GO_VERIFIER)
    with pytest.raises(NoteError, match="key ID does not match"):
        Signer.parse(GO_SIGNER.replace("5de0f997", "5de0f998"))
    with pytest.raises(NoteError, match="not an Ed25519 signer key"):
        Signer.parse(GO_SIGNER.replace("+AXNN", "+AnNN"))


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\x00b", "a\udcff"])
def test_key_names_are_checked(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        Signer.generate(name)
    with pytest.raises(NoteError, match="key name"):
        Verifier(name, bytes(32))


def test_verifier_needs_a_32_byte_key() -> None:
    with pytest.raises(NoteError, match="32 bytes"):
        Verifier("a", bytes(31))


def test_sign_note_refusals() -> None:
    signer = Signer.generate("a")
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("t\n", [])
    with pytest.raises(NoteError, match="end with a newline"):
        sign_note("t", [signer])
    with pytest.raises(NoteError, match="control character"):
        sign_note("t\x07\n", [signer])
