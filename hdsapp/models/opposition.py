import datetime as dt
import uuid

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class Opposition(SQLModel, table=True):
    """A patient's objection to sharing (CSP L.1110-4 III), rendered as a FHIR Consent (deny).

    ``scope`` "group": no sharing about the patient in the group; "professionals": not with the
    professionals listed in ``opposition_professional``. Lifting sets ``status`` to "inactive"
    (the record stays, with who lifted it and when).
    """

    __tablename__ = "opposition"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'inactive')", name="status"),
        CheckConstraint("scope IN ('group', 'professionals')", name="scope"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id")
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    status: str = Field(default="active", max_length=16)
    scope: str = Field(max_length=16)
    # Prior information: the professional who informed the patient, and when.
    informed_by: uuid.UUID = Field(foreign_key="user_account.id")
    informed_at: dt.datetime = Field(sa_type=UTCDateTime)
    recorded_by: uuid.UUID = Field(foreign_key="user_account.id")
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lifted_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    lifted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=1)
