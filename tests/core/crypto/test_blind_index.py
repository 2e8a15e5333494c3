from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsapp.core.crypto.blind_index import (
    INS_NIA_SYSTEM,
    INS_NIR_SYSTEM,
    Purpose,
    _mac,
    ins_index,
    name_birthdate_index,
    normalize_family_name,
    normalize_ins_system,
    normalize_ins_value,
    purpose_key,
)

KEY = bytes(range(32))
BIRTH = dt.date(1984, 12, 1)


def documented_mac(purpose: bytes, *fields: str) -> bytes:
    """The module docstring's recipe, written with the standard library only."""
    prk = hmac.digest(bytes(32), KEY, hashlib.sha256)  # HKDF-Extract, salt=None
    key = hmac.digest(prk, b"hdsapp-blind-index-v1:" + purpose + b"\x01", hashlib.sha256)
    message = b"".join(struct.pack(">I", len(f.encode())) + f.encode() for f in fields)
    return hmac.digest(key, message, hashlib.sha256)


def test_known_answers() -> None:
    ins = ins_index(KEY, system=INS_NIR_SYSTEM, value="1 84 12 2A 004 005 52")
    assert ins.hex() == "6934e9f17d8e320f1430d767ac99e130a49cada7ceb5ae4b6170397ca86b4fac"
    assert ins == documented_mac(b"ins", INS_NIR_SYSTEM, "184122A00400552")
    name = name_birthdate_index(KEY, family_name="D'Arc-Lefèvre", birth_date=BIRTH)
    assert name.hex() == "025fd7cfda38f1a280ed4e4f9701952527d3746c77fe11a4a818b6138ec5f59e"
    assert name == documented_mac(b"name-birthdate", "darclefevre", "1984-12-01")


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("D'Arc-Lefèvre", "darclefevre"),
        ("darc lefevre", "darclefevre"),
        ("DARC LEFEVRE", "darclefevre"),
        ("d\u2019arc\u2010lefevre", "darclefevre"),
        ("  D ' ARC - LEFÈVRE ", "darclefevre"),
        ("Lefe\u0300vre", "lefevre"),  # decomposed accent
        ("Œuvrard", "oeuvrard"),
        ("Lætitia", "laetitia"),
        ("Müller-Straße", "mullerstrasse"),
        ("N\u02bcDiaye", "ndiaye"),
        ("ÇAĞLAR", "caglar"),
        ("İnce", "ince"),
        ("\uff24\uff55\uff50\uff4f\uff4e\uff54", "dupont"),  # full-width
        ("St. Pierre", "st.pierre"),
    ],
)
def test_family_name_normalisation(typed: str, normalized: str) -> None:
    assert normalize_family_name(typed) == normalized


def test_name_variants_share_an_index() -> None:
    indexes = {
        name_birthdate_index(KEY, family_name=name, birth_date=BIRTH)
        for name in ("D'Arc-Lefèvre", "darc lefevre", "DARC-LEFEVRE", "d\u2019arc lefèvre")
    }
    assert len(indexes) == 1


def test_birth_date_matters() -> None:
    a = name_birthdate_index(KEY, family_name="Dupont", birth_date=BIRTH)
    b = name_birthdate_index(KEY, family_name="Dupont", birth_date=dt.date(1984, 12, 2))
    assert a != b


def test_birth_date_must_be_a_date() -> None:
    with pytest.raises(TypeError):
        name_birthdate_index(KEY, family_name="Dupont", birth_date=dt.datetime(1984, 12, 1))
    with pytest.raises(TypeError):
        name_birthdate_index(KEY, family_name="Dupont", birth_date="1984-12-01")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "  ", "-'", "\u0301"])
def test_empty_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_family_name(name)


@pytest.mark.parametrize(
    "typed", ["184122A00400552", "1 84 12 2A 004 005 52", "184122a00400552", "\t184122A00400552\n"]
)
def test_ins_value_normalisation(typed: str) -> None:
    assert normalize_ins_value(typed) == "184122A00400552"


@pytest.mark.parametrize(
    "typed",
    [INS_NIR_SYSTEM, " " + INS_NIR_SYSTEM, "URN:OID:1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.8"],
)
def test_ins_system_normalisation(typed: str) -> None:
    assert normalize_ins_system(typed) == INS_NIR_SYSTEM


def test_ins_nir_and_nia_never_collide() -> None:
    value = "184122A00400552"
    assert ins_index(KEY, system=INS_NIR_SYSTEM, value=value) != ins_index(
        KEY, system=INS_NIA_SYSTEM, value=value
    )


def test_groups_and_purposes_are_separated() -> None:
    other_group = bytes(range(1, 33))
    a = ins_index(KEY, system=INS_NIR_SYSTEM, value="184122A00400552")
    assert a != ins_index(other_group, system=INS_NIR_SYSTEM, value="184122A00400552")
    assert purpose_key(KEY, Purpose.INS) != purpose_key(KEY, Purpose.NAME_BIRTHDATE)


@settings(deadline=None)
@given(st.text(min_size=1, max_size=20), st.data())
def test_field_boundaries_cannot_be_shifted(text: str, data: st.DataObject) -> None:
    # Length prefixes: ("ab", "c") and ("a", "bc") never share an index.
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(0, len(text)).filter(lambda j: j != i))
    assert _mac(KEY, text[:i], text[i:]) != _mac(KEY, text[:j], text[j:])


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_ins_is_refused(empty: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        ins_index(KEY, system=INS_NIR_SYSTEM, value=empty)
    with pytest.raises(ValueError, match="empty"):
        ins_index(KEY, system=empty, value="184122A00400552")


def test_index_key_must_be_256_bit() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        purpose_key(bytes(16), Purpose.INS)
