"""The demo care group's threads, messages, task and attachment (``hdsapp demo``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database, utcnow
from hdsapp.threads import blobs, repository
from hdsapp.threads.schemas import (
    MessageCreate,
    TaskCreate,
    ThreadCreate,
)
from hdsapp.threads.service.attachments import Upload, upload_attachment
from hdsapp.threads.service.common import Keyring
from hdsapp.threads.service.messages import post_message
from hdsapp.threads.service.tasks import create_task
from hdsapp.threads.service.threads import open_thread

# A small PDF (one page, "Compte rendu de démonstration"), valid enough for any viewer.
DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 62>>stream\nBT /F1 18 Tf 72 760 Td (Compte rendu de demonstration) Tj ET\n"
    b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@dataclass(frozen=True)
class DemoThread:
    patient: int  # index in the demo patients
    title: str
    priority: str
    participants: tuple[str, ...]  # demo user keys besides the doctor, who opens it
    messages: tuple[tuple[str, str], ...]  # (author key, body)
    task: tuple[str, str, int] | None  # (assignee key, description, due in days)
    attachment: str | None  # document type of the demo PDF


DEMO_THREADS = (
    DemoThread(
        patient=0,
        title="Retour à domicile après prothèse de hanche",
        priority="urgent",
        participants=("nurse", "pharmacist"),
        messages=(
            ("doctor", "Sortie prévue jeudi. Pansement à J+2, anticoagulant pendant 35 jours."),
            ("nurse", "Je passe vendredi matin pour le premier pansement."),
            ("pharmacist", "Ordonnance reçue, le traitement sera prêt jeudi après-midi."),
        ),
        task=("nurse", "Premier pansement à domicile et contrôle de la cicatrice", 2),
        attachment="report",
    ),
    DemoThread(
        patient=1,
        title="Adaptation du traitement antihypertenseur",
        priority="routine",
        participants=("pharmacist",),
        messages=(
            ("doctor", "Tension encore à 15/9 malgré le traitement : j'augmente la dose."),
            ("pharmacist", "Noté, je vérifie les interactions avec son traitement actuel."),
        ),
        task=("pharmacist", "Vérifier les interactions et rappeler le patient", 5),
        attachment=None,
    ),
)


def _user(actor: Actor) -> uuid.UUID:
    assert actor.user_id is not None
    return actor.user_id


def seed_demo_threads(
    *,
    session: Session,
    database: Database,
    settings: Settings,
    keyring: Keyring,
    store: blobs.BlobStore,
    group_id: uuid.UUID,
    patient_ids: Sequence[uuid.UUID],
    members: dict[str, Actor],
) -> list[uuid.UUID]:
    """The demo group's threads, with messages, a task and an attachment, each written through
    its use case by the demo member who would write it (as the audit log records it).
    Idempotent: a demo thread whose first message is there is left alone. ``members`` maps the
    demo user keys (doctor, nurse, pharmacist) to their actors."""
    ids = []
    for n, demo in enumerate(DEMO_THREADS):
        first = f"demo-{n}-0"
        existing = repository.thread_of_client_id(session, group_id, first)
        if existing is not None:
            ids.append(existing)
            continue
        opened = open_thread(
            session=session,
            database=database,
            settings=settings,
            actor=members["doctor"],
            keyring=keyring,
            group_id=group_id,
            request=ThreadCreate.model_validate(
                {
                    "patient": f"Patient/{patient_ids[demo.patient]}",
                    "title": demo.title,
                    "participants": [str(_user(members[key])) for key in demo.participants],
                    "priority": demo.priority,
                }
            ),
        )
        for i, (author, body) in enumerate(demo.messages):
            post_message(
                session=session,
                database=database,
                settings=settings,
                actor=members[author],
                keyring=keyring,
                thread_id=opened.id,
                request=MessageCreate(body=body, client_id=f"demo-{n}-{i}"),
            )
        if demo.task is not None:
            assignee, description, days = demo.task
            create_task(
                session=session,
                database=database,
                settings=settings,
                actor=members["doctor"],
                keyring=keyring,
                thread_id=opened.id,
                request=TaskCreate.model_validate(
                    {
                        "description": description,
                        "assignee": str(_user(members[assignee])),
                        "due_date": (utcnow() + dt.timedelta(days=days)).date().isoformat(),
                    }
                ),
            )
        if demo.attachment is not None:
            upload_attachment(
                session=session,
                database=database,
                settings=settings,
                actor=members["doctor"],
                keyring=keyring,
                store=store,
                thread_id=opened.id,
                upload=Upload(
                    data=DEMO_PDF,
                    filename="compte-rendu-demo.pdf",
                    document_type=demo.attachment,
                    body="Compte rendu opératoire",
                    client_id=f"demo-{n}-attachment",
                ),
            )
        ids.append(opened.id)
    return ids
