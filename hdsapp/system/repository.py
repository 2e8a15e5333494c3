from sqlalchemy import text
from sqlmodel import Session

from hdsapp.core.db import utcnow
from hdsapp.models.worker_heartbeat import WorkerHeartbeat


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


def record_heartbeat(session: Session, *, name: str, hostname: str) -> WorkerHeartbeat:
    beat = session.get(WorkerHeartbeat, name, with_for_update=True)
    if beat is None:
        beat = WorkerHeartbeat(name=name, hostname=hostname, last_seen=utcnow(), beats=0)
    beat.hostname = hostname
    beat.last_seen = utcnow()
    beat.beats += 1
    session.add(beat)
    return beat


def get_heartbeat(session: Session, name: str) -> WorkerHeartbeat | None:
    return session.get(WorkerHeartbeat, name)
