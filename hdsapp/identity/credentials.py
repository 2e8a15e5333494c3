"""Credentials as values: password hashes, TOTP codes, recovery codes, session ids, tokens.

No database and no web framework here: the service decides, this module computes.

- Passwords: argon2id (argon2-cffi) with the OWASP Password Storage Cheat Sheet parameters
  (m = 19 MiB, t = 2, p = 1); hashes made with other parameters are upgraded at the next login.
  Rules per NIST SP 800-63B: 12 to 128 characters after NFKC normalisation, any characters, no
  composition rules.
- TOTP (RFC 6238, pyotp): 6 digits, 30-second steps, one step of clock drift either way. The
  matched step is returned so the caller can refuse a code used before (replay).
- Recovery codes: 80 random bits each, shown once, stored as SHA-256 (brute force of 80 bits
  is out of reach, so a slow hash adds nothing).
- Session ids and tokens: 256 random bits; only their SHA-256 is stored. The CSRF token is an
  HMAC of the session id, so it is bound to the session and needs no storage.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import unicodedata
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 128
TOTP_DIGITS = 6
TOTP_PERIOD = 30
TOTP_DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
PAT_PREFIX = "hds_pat_"
SESSION_TOKEN_BYTES = 32
_CSRF_LABEL = b"hdsapp csrf v1"
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/i/l
_RECOVERY_GROUPS, _RECOVERY_GROUP_LENGTH = 4, 4  # 16 characters of 31 symbols: ~79 bits

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class PasswordRuleError(ValueError):
    """The password breaks a rule; the message says which (never the password)."""


def normalise_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_password_rules(password: str) -> None:
    length = len(normalise_password(password))
    if length < PASSWORD_MIN_LENGTH:
        raise PasswordRuleError(f"the password must have at least {PASSWORD_MIN_LENGTH} characters")
    if length > PASSWORD_MAX_LENGTH:
        raise PasswordRuleError(f"the password must have at most {PASSWORD_MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(normalise_password(password))


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). With no hash (unknown user, federated-only account) a dummy
    hash is verified anyway, so the answer takes the same time."""
    candidate = normalise_password(password)[: PASSWORD_MAX_LENGTH * 4]
    if password_hash is None:
        _verify(_dummy_hash(), candidate)
        return False, False
    if not _verify(password_hash, candidate):
        return False, False
    return True, _hasher.check_needs_rehash(password_hash)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# -- TOTP ------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """160 random bits, base32 (RFC 4226 recommends at least 128, ideally 160)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, *, account: str, issuer: str = "hdsapp") -> str:
    uri: str = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )
    return uri


def totp_step(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // TOTP_PERIOD


def totp_code(secret: str, step: int) -> str:
    code: str = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).at(step * TOTP_PERIOD)
    return code


_OTP_RE = re.compile(r"^[0-9]{6}$")


def is_totp_shaped(otp: str) -> bool:
    return bool(_OTP_RE.match(otp.replace(" ", "")))


def match_totp(secret: str | None, otp: str, now: dt.datetime) -> int | None:
    """The time step ``otp`` is valid for (within the allowed drift), else None."""
    otp = otp.replace(" ", "")
    if secret is None or not _OTP_RE.match(otp):
        return None
    current = totp_step(now)
    matched = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        # Every candidate is computed and compared: no early exit to time.
        if hmac.compare_digest(totp_code(secret, step), otp):
            matched = step
    return matched


# -- recovery codes --------------------------------------------------------------------------


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    return [
        "-".join(
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP_LENGTH))
            for _ in range(_RECOVERY_GROUPS)
        )
        for _ in range(count)
    ]


def normalise_recovery_code(code: str) -> str | None:
    """Lower-case, without spaces and dashes; None if it cannot be a recovery code."""
    compact = re.sub(r"[\s-]", "", code).lower()
    length = _RECOVERY_GROUPS * _RECOVERY_GROUP_LENGTH
    if len(compact) != length or any(c not in _RECOVERY_ALPHABET for c in compact):
        return None
    return compact


def recovery_code_hash(normalised: str) -> str:
    return sha256_hex("recovery:" + normalised)


# -- session ids, CSRF tokens, personal access tokens ----------------------------------------


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def csrf_token_for(session_token: str) -> str:
    digest = hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token_for(session_token).encode(), presented.encode())


def new_personal_access_token() -> str:
    return PAT_PREFIX + secrets.token_urlsafe(32)


_PAT_RE = re.compile(r"^hds_pat_[A-Za-z0-9_-]{43}$")


def is_personal_access_token(value: str) -> bool:
    return bool(_PAT_RE.match(value))


_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``"90"`` or ``"90s"``, ``"15m"``, ``"1h"``, ``"30d"``, ``"2w"``."""
    found = _DURATION_RE.match(text)
    if found is None:
        raise ValueError("a duration is a number with an optional unit s, m, h, d or w")
    return dt.timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
