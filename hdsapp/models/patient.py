import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

IDENTITY_STATUSES = ("PROV", "RECUP", "VALI", "QUAL")


class Patient(SQLModel, table=True):
    """A patient of one care group. No identity in clear: the FHIR Patient is sealed with the
    group's data key (``identity``); exact-match search goes through blind indexes (HMAC under a
    per-group key, hdsapp.core.crypto.blind_index)."""

    __tablename__ = "patient"
    __table_args__ = (
        # One patient per INS in a group (NULLs, i.e. no INS, are distinct on both backends).
        UniqueConstraint("group_id", "ins_index"),
        Index("ix_patient_name_birthdate", "group_id", "name_birthdate_index"),
        CheckConstraint("identity_status IN ('PROV', 'RECUP', 'VALI', 'QUAL')", name="status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id")
    identity: bytes = Field(sa_type=LargeBinary)  # sealed FHIR Patient JSON (envelope v1)
    ins_index: bytes | None = Field(default=None, sa_type=LargeBinary)
    name_birthdate_index: bytes | None = Field(default=None, sa_type=LargeBinary)
    identity_status: str = Field(max_length=5)
    active: bool = Field(default=True)
    version: int = Field(default=1)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
