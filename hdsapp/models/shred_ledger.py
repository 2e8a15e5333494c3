import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class ShredLedger(SQLModel, table=True):
    """Append-only record of crypto-shredding: the keys of a thread (``thread_id`` set) or of a
    whole group (``thread_id`` NULL) were destroyed, when, by whom, why.

    Re-applied at start-up and by ``hdsapp keys reapply-shreds``: any key row of a thread or
    group named here is deleted again (after a database restore). Triggers refuse UPDATE and
    DELETE (migration 0005_keys). ``reason`` is the operator's words: never health data.
    """

    __tablename__ = "shred_ledger"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(index=True)
    thread_id: uuid.UUID | None = Field(default=None, index=True)
    shredded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_id: uuid.UUID | None = Field(default=None)
    actor_kind: str = Field(max_length=16)
    reason: str = Field(max_length=500)
    key_versions: int = Field(default=0)
