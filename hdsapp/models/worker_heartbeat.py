import datetime as dt

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class WorkerHeartbeat(SQLModel, table=True):
    """Last time a background worker ran the scheduled heartbeat: proof the job path works."""

    __tablename__ = "worker_heartbeat"

    name: str = Field(primary_key=True, max_length=64)
    hostname: str = Field(max_length=255)
    last_seen: dt.datetime = Field(sa_type=UTCDateTime)
    beats: int = Field(default=0)
