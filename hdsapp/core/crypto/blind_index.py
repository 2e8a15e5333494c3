"""Blind indexes: exact-match search over encrypted patient identities.

A blind index is HMAC-SHA-256 over a normalised value, under a key derived per group and per
purpose, so the database can answer "is there a patient with this INS in this group" without
holding the INS in clear, and equal values in two groups (or for two purposes) do not link up.

Key derivation: ``purpose_key = HKDF-SHA-256(ikm=group_index_key, salt=None,
info=b"hdsapp-blind-index-v1:" + purpose, length=32)`` with purpose ``"ins"`` or
``"name-birthdate"``. The group index key is a 32-byte key of its own (``generate_data_key``),
stored wrapped like a KEK, never the KEK itself.

Message: the normalised fields, each as u32 big-endian length || UTF-8 bytes, so no pair of
fields can be confused with another. Output: the 32-byte MAC (store it as bytes, or ``.hex()``).

Normalisation changes are breaking: every stored index would stop matching. Tests pin examples.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import struct
import unicodedata

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA_SYSTEM = "urn:oid:1.2.250.1.213.1.4.9"

_INFO_PREFIX = b"hdsapp-blind-index-v1:"
_U32 = struct.Struct(">I")
_BARE_OID = re.compile(r"[0-2](\.[0-9]+)+")
_URN_OID = "urn:oid:"
# Hyphens, dashes and apostrophes people type in names, beyond ASCII "-" and "'".
_NAME_PUNCTUATION = frozenset("-'`\u2010\u2011\u2012\u2013\u2014\u2018\u2019\u02bc\u00b4")
_LIGATURES = {"œ": "oe", "æ": "ae"}


class Purpose(enum.StrEnum):
    INS = "ins"
    NAME_BIRTHDATE = "name-birthdate"


def purpose_key(group_index_key: bytes, purpose: Purpose) -> bytes:
    """The per-purpose HMAC key (see the module docstring)."""
    if len(group_index_key) != 32:
        raise ValueError("group index key must be 32 bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_INFO_PREFIX + purpose.value.encode(),
    )
    return hkdf.derive(group_index_key)


def normalize_ins_system(system: str) -> str:
    """Surrounding whitespace removed; a bare OID gets the ``urn:oid:`` prefix; the prefix itself
    is lower-cased. ``" 1.2.250.1.213.1.4.8"`` -> ``"urn:oid:1.2.250.1.213.1.4.8"``.
    """
    system = system.strip()
    if not system:
        raise ValueError("INS system is empty")
    if _BARE_OID.fullmatch(system):
        return _URN_OID + system
    if system[: len(_URN_OID)].lower() == _URN_OID:
        return _URN_OID + system[len(_URN_OID) :]
    return system


def normalize_ins_value(value: str) -> str:
    """Every whitespace character removed, then upper-cased (Corsican NIRs carry 2A/2B).

    ``"1 84 12 2A 004 005 52"`` -> ``"184122A00400552"``.
    """
    normalized = "".join(value.split()).upper()
    if not normalized:
        raise ValueError("INS value is empty")
    return normalized


def normalize_family_name(name: str) -> str:
    """Family name reduced to what survives every way people type it, in this order:

    1. ``str.casefold()`` (Unicode full case folding: ``"ß"`` -> ``"ss"``);
    2. Unicode NFKD, then every combining mark (category M*) dropped: accents go,
       ``"é"`` -> ``"e"``, ``"ﬁ"`` -> ``"fi"``;
    3. ligatures ``"œ"`` -> ``"oe"``, ``"æ"`` -> ``"ae"`` (NFKD leaves them);
    4. whitespace, hyphens and dashes (U+002D, U+2010 to U+2014) and apostrophes (U+0027,
       U+0060, U+2018, U+2019, U+02BC, U+00B4) dropped.

    Other characters (letters, digits, dots) are kept. ``"D'Arc-Lefèvre"``, ``"darc lefevre"``
    and ``"DARC LEFEVRE"`` all give ``"darclefevre"``.
    """
    folded = unicodedata.normalize("NFKD", name.casefold())
    kept: list[str] = []
    for char in folded:
        if unicodedata.category(char).startswith("M"):
            continue
        if char.isspace() or char in _NAME_PUNCTUATION:
            continue
        kept.append(_LIGATURES.get(char, char))
    normalized = "".join(kept)
    if not normalized:
        raise ValueError("family name is empty after normalisation")
    return normalized


def ins_index(group_index_key: bytes, *, system: str, value: str) -> bytes:
    """Index of an INS: HMAC over (normalised system, normalised value), so an INS-NIR and an
    INS-NIA with the same digits never collide."""
    return _mac(
        purpose_key(group_index_key, Purpose.INS),
        normalize_ins_system(system),
        normalize_ins_value(value),
    )


def name_birthdate_index(group_index_key: bytes, *, family_name: str, birth_date: dt.date) -> bytes:
    """Index of (family name, birth date): HMAC over (normalised name, ISO date ``YYYY-MM-DD``)."""
    if isinstance(birth_date, dt.datetime) or not isinstance(birth_date, dt.date):
        raise TypeError("birth_date must be a datetime.date")
    return _mac(
        purpose_key(group_index_key, Purpose.NAME_BIRTHDATE),
        normalize_family_name(family_name),
        birth_date.isoformat(),
    )


def _mac(key: bytes, *fields: str) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    for text in fields:
        data = text.encode("utf-8")
        mac.update(_U32.pack(len(data)) + data)
    return mac.finalize()
