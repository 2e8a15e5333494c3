"""A clinician works on a patient; an auditor finds those accesses, sees the denied attempt and
the break-the-glass access highlighted, checks the log's integrity and exports it — in a real
Chromium against the real app."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from hdsapp.auditing import service as auditing
from hdsapp.auditing.signing import create_signing_key, load_signer
from hdsapp.config import Settings
from hdsapp.core.actor import Actor, RequestInfo, Role, Scope, system_actor
from hdsapp.core.crypto.keyring import keyring_for
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import repository as identity_repository
from hdsapp.identity import service as identity
from hdsapp.threads import service as threads
from hdsapp.threads.schemas import BreakGlassCreate, ThreadCreate
from tests.conftest import REPO_ROOT
from tests.web.a11y import assert_accessible
from tests.web.conftest import ARTIFACTS, Guard, LiveServer, Shoot
from tests.web.people import People, Person, sign_in

pytestmark = pytest.mark.browser

GROUP_NAME = "MSP des Tilleuls"


class Cast:
    def __init__(self, people: People) -> None:
        self.coordinator = people.add("paul.durand@example.org", "Dr Paul Durand")
        self.clinician = people.add("claire.martin@example.org", "Dr Claire Martin")
        self.colleague = people.add("marc.petit@example.org", "Marc Petit", profession="60")
        self.auditor = people.add("alice.bernard@example.org", "Alice Bernard", profession="21")
        self.other = people.add("sophie.leroy@example.org", "Dr Sophie Leroy")
        self.group = people.group(GROUP_NAME, self.coordinator)
        people.join(self.group, self.clinician, "clinician")
        people.join(self.group, self.colleague, "clinician")
        people.join(self.group, self.auditor, "auditor")
        people.join(self.group, self.other, "clinician")


@pytest.fixture
def cast(people: People) -> Cast:
    return Cast(people)


def token_for(database: Database, settings: Settings, person: Person) -> str:
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
        token: str = created.token
        return token


def break_the_glass(
    database: Database, settings: Settings, cast: Cast, patient_id: uuid.UUID
) -> None:
    """Sophie opens a thread about the patient; Dr Martin, not in it, breaks the glass to read
    it, through the threads service (its screen comes with the threads part of the PWA)."""

    def actor(person: Person, request_id: str) -> Actor:
        return Actor(
            kind="user",
            request=RequestInfo(request_id=request_id, client_ip="203.0.113.7", user_agent="x"),
            user_id=person.user_id,
            memberships=MappingProxyType({cast.group: Role.CLINICIAN}),
            scopes=frozenset(Scope),
            authenticated_at=utcnow(),
            second_factor=True,
        )

    keyring = keyring_for(settings)
    with database.unit_of_work() as session:
        thread = threads.open_thread(
            session=session,
            database=database,
            actor=actor(cast.other, "open-thread-0001"),
            settings=settings,
            keyring=keyring,
            group_id=cast.group,
            request=ThreadCreate(patient=f"Patient/{patient_id}", title="Chute à domicile"),
        )
    with database.unit_of_work() as session:
        threads.break_glass(
            session=session,
            database=database,
            actor=actor(cast.clinician, "break-glass-0001"),
            settings=settings,
            thread_id=thread.id,
            request=BreakGlassCreate(reason="Patiente inconsciente aux urgences"),
        )


def sign_checkpoint(database: Database, settings: Settings) -> int:
    create_signing_key(settings)
    signer = load_signer(settings)
    with database.unit_of_work() as session:
        result = auditing.sign_new_checkpoint(session=session, signer=signer)
    assert result.checkpoint_size is not None
    return result.checkpoint_size


def test_clinician_registers_a_patient_and_records_an_opposition(
    page: Page, cast: Cast, shoot: Shoot
) -> None:
    sign_in(page, cast.clinician)
    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients")
    page.get_by_text("Nouveau patient").click()
    form = page.locator("#patient-register")
    form.get_by_label("Nom de naissance").fill("Martin")
    form.get_by_label("Prénom").fill("Julie")
    form.get_by_label("Date de naissance").fill("1979-03-15")
    form.get_by_label("Sexe").select_option("female")
    form.get_by_role("button", name="Enregistrer le patient").click()
    expect(page.locator("#patient-title")).to_have_text("Julie MARTIN")
    expect(page.locator("#patient-detail")).to_contain_text("Identité provisoire")
    expect(page.locator("#opposition-list")).to_have_text("Aucune opposition enregistrée.")

    page.get_by_text("Enregistrer une opposition").click()
    page.get_by_label("Certains professionnels").check()
    page.locator("#opposition-form").get_by_label("Marc Petit").check()
    page.get_by_role("button", name="Enregistrer l'opposition").click()
    expect(page.locator("#toast")).to_have_text("Opposition enregistrée.")
    expect(page.locator("#opposition-list")).to_contain_text("Professionnels : Marc Petit")
    expect(page.locator("#opposition-list")).to_contain_text("Active")
    assert_accessible(page)
    shoot(page, "patient")

    # Exact-match search finds her by name and birth date.
    search = page.locator("#patient-search")
    search.get_by_label("Nom de naissance").fill("MARTIN")
    search.get_by_label("Date de naissance").fill("1979-03-15")
    search.get_by_role("button", name="Rechercher").click()
    expect(page.locator("#patient-results")).to_contain_text("Julie MARTIN")

    page.get_by_role("button", name="Ouvrir le dossier de Julie MARTIN").click()
    page.get_by_role("button", name="Lever").click()
    page.get_by_role("dialog").get_by_role("button", name="Lever").click()
    expect(page.locator("#toast")).to_have_text("Opposition levée.")
    expect(page.locator("#opposition-list")).to_contain_text("Levée")


def test_auditor_finds_the_clinicians_accesses_and_checks_integrity(
    page: Page,
    cast: Cast,
    database: Database,
    settings: Settings,
    live_server: LiveServer,
    guard: Guard,
    shoot: Shoot,
    tmp_path: Path,
) -> None:
    # The clinician registers a patient and objects for her to Marc, through the PWA.
    sign_in(page, cast.clinician)
    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    page.get_by_text("Nouveau patient").click()
    form = page.locator("#patient-register")
    form.get_by_label("Nom de naissance").fill("Martin")
    form.get_by_label("Prénom").fill("Julie")
    form.get_by_label("Date de naissance").fill("1979-03-15")
    form.get_by_role("button", name="Enregistrer le patient").click()
    expect(page.locator("#patient-title")).to_have_text("Julie MARTIN")
    page.get_by_text("Enregistrer une opposition").click()
    page.get_by_label("Certains professionnels").check()
    page.locator("#opposition-form").get_by_label("Marc Petit").check()
    page.get_by_role("button", name="Enregistrer l'opposition").click()
    expect(page.locator("#toast")).to_have_text("Opposition enregistrée.")
    expect(page.locator("#opposition-list")).to_contain_text("Professionnels : Marc Petit")
    page.get_by_role("button", name="Se déconnecter").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")

    with database.session() as session:
        patient_id = uuid.UUID(str(session.execute(text("SELECT id FROM patient")).scalar_one()))
    # Marc's script tries to read her: refused (the opposition), and logged as denied.
    marc = token_for(database, settings, cast.colleague)
    denied = httpx.get(
        f"{live_server.url}/api/v1/groups/{cast.group}/patients/{patient_id}",
        headers={"Authorization": f"Bearer {marc}"},
    )
    assert denied.status_code == 403
    break_the_glass(database, settings, cast, patient_id)
    size = sign_checkpoint(database, settings)

    sign_in(page, cast.auditor)
    page.get_by_role("navigation").get_by_role("link", name="Journal d'accès").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Journal d'accès")
    expect(page.locator("#integrity-status")).to_contain_text(
        f"Vérifié jusqu'au point de contrôle {size}."
    )
    chart = page.get_by_role("img", name="Accès par jour")
    expect(chart).to_be_visible()
    expect(page.locator(".legend")).to_contain_text("Refusés ou en échec (1)")
    expect(page.locator(".legend")).to_contain_text("Bris de glace (1)")

    # The clinician's accesses.
    page.get_by_label("Professionnel").select_option(label="Dr Claire Martin")
    page.get_by_role("button", name="Rechercher").click()
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#audit-table")).to_contain_text(f"Patient/{str(patient_id)[:8]}")
    expect(page.locator("#audit-table")).not_to_contain_text("Marc Petit")
    btg = page.locator("#audit-table tr.row-btg")
    expect(btg).to_have_count(1)
    expect(btg).to_contain_text("Bris de glace")
    expect(btg).to_contain_text("Patiente inconsciente aux urgences")
    expect(page.locator("#audit-table")).to_contain_text("Création")

    # The denied attempt, by patient and outcome.
    page.get_by_label("Professionnel").select_option("")
    page.get_by_label("Patient", exact=True).fill(f"Patient/{patient_id}")
    page.get_by_label("Résultat").select_option("4")
    page.get_by_role("button", name="Rechercher").click()
    denied_row = page.locator("#audit-table tr.row-denied")
    expect(denied_row).to_have_count(1)
    expect(denied_row).to_contain_text("Marc Petit")
    expect(denied_row).to_contain_text("Refusé")
    assert_accessible(page)
    page.get_by_role("button", name="Effacer").click()
    page.get_by_role("button", name="Rechercher").click()
    expect(page.locator("#audit-table tr.row-btg")).to_have_count(1)
    expect(page.locator(".chart-box")).not_to_have_attribute("aria-busy", "true")
    shoot(page, "audit")
    shoot(page, "audit-results", at="#audit-chart-title")

    # The export downloads, and verifies offline with the audit package and the shown key.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Exporter").click()
    exported = tmp_path / "audit-export.json"
    download_info.value.save_as(exported)
    assert json.loads(exported.read_text())
    vkey = page.locator(".integrity-details code").last.text_content() or ""
    verified = subprocess.run(
        [sys.executable, "-m", "audit", "verify", str(exported), "--key", vkey],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (ARTIFACTS / "audit-export.json").write_text(exported.read_text())
