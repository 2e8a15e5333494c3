import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class AuditCheckpoint(SQLModel, table=True):
    """A signed checkpoint of the audit tree: a C2SP tlog-checkpoint in a C2SP signed note.

    Append-only. ``verifier_key`` is the C2SP verifier key that signed it, so the API can
    serve it without loading the private key (which only the signer reads, from a file).
    """

    __tablename__ = "audit_checkpoint"

    tree_size: int = Field(
        sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    root_hash: bytes
    note: str = Field(sa_type=sa.Text)
    verifier_key: str = Field(max_length=300)
    signed_at: dt.datetime = Field(sa_type=UTCDateTime)
