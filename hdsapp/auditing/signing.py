"""The checkpoint signing key: an Ed25519 seed in a 0600 file outside the database.

Created by ``hdsapp init`` (``HDS_AUDIT_SIGNING_KEY_FILE``, default
``var/secrets/audit-signing.key``) and read only by the signer (the scheduled task and
``hdsapp audit checkpoint``) and by ``hdsapp audit verify``/``key`` to pin its public half.
The API process never loads it: it serves the verifier key stored with each checkpoint.
The C2SP key name is the log's origin.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import Signer
from hdsapp.config import Settings
from hdsapp.core.secrets import SECRET_BYTES, create_secret_file, read_secret_file


def create_signing_key(settings: Settings) -> Path | None:
    """Create the key file if it does not exist; returns its path when created."""
    path = settings.audit_signing_key_path
    return path if create_secret_file(path, size=SECRET_BYTES) else None


def load_signer(settings: Settings) -> Signer:
    """The signer; raises hdsapp.core.secrets.SecretFileError if the file is missing,
    readable by others, or too short."""
    seed = read_secret_file(settings.audit_signing_key_path)[:SECRET_BYTES]
    return Signer(settings.effective_audit_origin, Ed25519PrivateKey.from_private_bytes(seed))
