"""The inbox lists the case threads of my groups, unread first (threads API)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import repository as identity_repository
from hdsapp.identity import service as identity
from tests.web.a11y import assert_accessible
from tests.web.conftest import LiveServer, Shoot
from tests.web.people import People, Person, sign_in

pytestmark = pytest.mark.browser

PATIENT = {
    "resourceType": "Patient",
    "extension": [
        {
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
            "extension": [
                {
                    "url": "identityStatus",
                    "valueCoding": {
                        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status",
                        "code": "PROV",
                    },
                }
            ],
        }
    ],
    "name": [{"use": "official", "family": "Martin", "given": ["Julie"]}],
    "gender": "female",
    "birthDate": "1979-03-15",
}


def bearer(database: Database, settings: Settings, person: Person) -> dict[str, str]:
    with database.unit_of_work() as session:
        user = identity_repository.user_by_id(session, person.user_id)
        created = identity.create_token(
            session=session,
            settings=settings,
            actor=system_actor(),
            user=user,
            name="script",
            scopes="read,write",
            expires_in="1h",
            now=utcnow(),
        )
        return {"Authorization": f"Bearer {created.token}"}


def test_inbox_lists_threads_unread_first(
    page: Page,
    people: People,
    database: Database,
    settings: Settings,
    live_server: LiveServer,
    shoot: Shoot,
) -> None:
    coordinator = people.add("paul.durand@example.org", "Dr Paul Durand")
    doctor = people.add("claire.martin@example.org", "Dr Claire Martin")
    nurse = people.add("marc.petit@example.org", "Marc Petit", profession="60")
    gid = people.group("MSP des Tilleuls", coordinator)
    people.join(gid, doctor, "clinician")
    people.join(gid, nurse, "clinician")

    # Dr Martin, from a script, opens two threads with Marc and writes in one of them.
    with httpx.Client(base_url=live_server.url, headers=bearer(database, settings, doctor)) as api:
        patient = api.post(f"/api/v1/groups/{gid}/patients", json=PATIENT)
        assert patient.status_code == 201, patient.text
        reference = f"Patient/{patient.json()['id']}"

        def open_thread(title: str, priority: str) -> str:
            answer = api.post(
                f"/api/v1/groups/{gid}/threads",
                json={
                    "patient": reference,
                    "title": title,
                    "participants": [str(nurse.user_id)],
                    "priority": priority,
                },
            )
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])

        quiet = open_thread("Suivi du pansement", "routine")
        busy = open_thread("Retour d'hospitalisation", "urgent")
        for text in ("Sortie prévue demain.", "Passage infirmier à 9 h ?"):
            posted = api.post(
                f"/api/v1/threads/{busy}/messages",
                json={"body": text, "client_id": str(uuid.uuid4())},
            )
            assert posted.status_code == 201, posted.text

    sign_in(page, nurse)
    threads = page.locator("#thread-list li")
    expect(threads).to_have_count(2)
    first = threads.nth(0)
    expect(first).to_contain_text("Retour d'hospitalisation")
    expect(first).to_contain_text("Urgent")
    expect(first).to_contain_text("Julie MARTIN")
    expect(first.get_by_label("2 messages non lus")).to_have_text("2")
    expect(threads.nth(1)).to_contain_text("Suivi du pansement")
    assert threads.nth(1).get_attribute("data-thread-id") == quiet
    expect(page.locator("#inbox-threads")).to_contain_text("1 non lu")
    assert_accessible(page)
    shoot(page, "inbox-threads")
