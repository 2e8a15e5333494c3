"""Coordination in a real Chromium: members, roles (with step-up), suspension, invitations,
and the invitee accepting from the link."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update
from sqlmodel import col

from hdsapp.core.db import Database, utcnow
from hdsapp.models.auth_session import AuthSession
from tests.web.a11y import assert_accessible
from tests.web.conftest import Guard, NewContext, Shoot
from tests.web.people import People, Person, sign_in

pytestmark = pytest.mark.browser

GROUP_NAME = "CPTS Rive Gauche"


@pytest.fixture
def coordinator(people: People) -> Person:
    return people.add("paul.durand@example.org", "Dr Paul Durand")


@pytest.fixture
def colleague(people: People) -> Person:
    return people.add("marc.petit@example.org", "Marc Petit", profession="60")


@pytest.fixture
def newcomer(people: People) -> Person:
    return people.add("claire.martin@example.org", "Dr Claire Martin")


@pytest.fixture
def group(people: People, coordinator: Person, colleague: Person) -> uuid.UUID:
    gid = people.group(GROUP_NAME, coordinator)
    people.join(gid, colleague, "clinician")
    return gid


def member_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#member-list li").filter(has_text=name)


def age_sessions(database: Database, user_id: uuid.UUID, minutes: int) -> None:
    """Make the last authentication old, so a sensitive action asks for a step-up."""
    with database.unit_of_work() as session:
        session.execute(
            update(AuthSession)
            .where(col(AuthSession.user_id) == user_id)
            .values(authenticated_at=utcnow() - dt.timedelta(minutes=minutes))
        )


def test_coordinator_invites_a_member_who_accepts(
    page: Page,
    group: uuid.UUID,
    coordinator: Person,
    newcomer: Person,
    shoot: Shoot,
) -> None:
    sign_in(page, coordinator)
    expect(page.locator("#group-list")).to_contain_text(GROUP_NAME)
    expect(page.locator("#group-list")).to_contain_text("Coordinateur")
    page.get_by_role("link", name="Coordination").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Coordination")
    expect(page.locator("#members-title")).to_have_text("Membres · 2 membres")
    expect(member_row(page, "Dr Paul Durand")).to_contain_text("(vous)")
    expect(member_row(page, "Marc Petit")).to_contain_text("Infirmier")

    page.get_by_label("Adresse e-mail").fill(newcomer.email)
    page.get_by_label("Rôle", exact=True).select_option("clinician")
    page.get_by_role("button", name="Inviter", exact=True).click()
    expect(page.get_by_text(f"Invitation créée pour {newcomer.email}.")).to_be_visible()
    link = page.locator("#invite-link").inner_text()
    assert link.startswith(f"{page.url.split('#')[0]}#/invitations/")
    expect(page.locator("#invitation-list")).to_contain_text(newcomer.email)
    assert_accessible(page)
    shoot(page, "coordination")

    page.get_by_role("button", name="Se déconnecter").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")

    # The invitee opens the link, signs in, and lands on the invitation.
    sign_in(page, newcomer, start=link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Invitation à un groupe de soins")
    assert_accessible(page)
    shoot(page, "invitation")
    page.get_by_role("button", name="Accepter l'invitation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bienvenue dans le groupe")
    expect(
        page.get_by_text(f"Vous êtes maintenant membre de {GROUP_NAME} (Soignant).")
    ).to_be_visible()
    assert "/invitations/" not in page.url
    page.get_by_role("link", name="Ouvrir la boîte de réception").click()
    expect(page.locator("#group-list")).to_contain_text(GROUP_NAME)
    expect(page.get_by_role("navigation").get_by_role("link", name="Patients")).to_be_visible()


def test_an_invitation_for_someone_else_is_refused(
    page: Page,
    contexts: NewContext,
    group: uuid.UUID,
    coordinator: Person,
    newcomer: Person,
    people: People,
    guard: Guard,
) -> None:
    other = people.add("intrus@example.org", "Intrus")
    sign_in(page, coordinator)
    page.get_by_role("link", name="Coordination").click()
    expect(page.locator("#members-title")).to_have_text("Membres · 2 membres")
    page.get_by_label("Adresse e-mail").fill(newcomer.email)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Inviter", exact=True).click()
    assert posted.value.status == 201
    link = f"{page.url.split('#')[0]}#/invitations/{posted.value.json()['token']}"

    # The link forwarded to someone else, on their own browser.
    guard.expect_http_error(f"/api/v1/invitations/{link.rsplit('/', 1)[1]}/accept", 403)
    intruder = contexts().new_page()
    sign_in(intruder, other, start=link)
    intruder.get_by_role("button", name="Accepter l'invitation").click()
    expect(intruder.get_by_role("alert")).to_have_text(
        "Cette invitation est adressée à une autre personne."
    )


def test_coordinator_suspends_reactivates_changes_role_and_removes(
    page: Page,
    group: uuid.UUID,
    coordinator: Person,
    colleague: Person,
    database: Database,
    guard: Guard,
) -> None:
    sign_in(page, coordinator)
    page.get_by_role("link", name="Coordination").click()
    marc = member_row(page, "Marc Petit")

    # Suspension asks for confirmation; Escape cancels.
    marc.get_by_role("button", name="Suspendre Marc Petit").click()
    dialog = page.get_by_role("dialog", name="Suspendre Marc Petit ?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(marc).not_to_contain_text("Suspendu")
    marc.get_by_role("button", name="Suspendre Marc Petit").click()
    page.get_by_role("dialog").get_by_role("button", name="Suspendre").click()
    expect(page.locator("#toast")).to_have_text("Marc Petit est suspendu.")
    expect(member_row(page, "Marc Petit")).to_contain_text("Suspendu")
    member_row(page, "Marc Petit").get_by_role("button", name="Réactiver Marc Petit").click()
    expect(member_row(page, "Marc Petit")).not_to_contain_text("Suspendu")

    # A role change is sensitive: with an old authentication the step-up dialog asks again.
    age_sessions(database, coordinator.user_id, minutes=60)
    guard.expect_http_error(f"/api/v1/groups/{group}/members/{colleague.user_id}", 403)
    marc = member_row(page, "Marc Petit")
    marc.get_by_label("Rôle de Marc Petit").select_option("auditor")
    marc.get_by_role("button", name="Changer").click()
    step_up = page.get_by_role("dialog", name="Confirmez votre identité")
    expect(step_up).to_be_visible()
    expect(step_up.get_by_label("Mot de passe")).to_be_focused()
    step_up.get_by_label("Mot de passe").fill(coordinator.password)
    step_up.get_by_label("Code de vérification").fill(coordinator.otp())
    step_up.get_by_role("button", name="Confirmer").click()
    expect(page.locator("#toast")).to_have_text("Marc Petit est maintenant Auditeur.")
    expect(member_row(page, "Marc Petit")).to_contain_text("Auditeur")

    # The last coordinator cannot be demoted: the UI does not even offer it for oneself.
    expect(member_row(page, "Dr Paul Durand").get_by_role("button")).to_have_count(0)

    member_row(page, "Marc Petit").get_by_role(
        "button", name="Retirer Marc Petit du groupe"
    ).click()
    page.get_by_role("dialog").get_by_role("button", name="Retirer").click()
    expect(page.locator("#toast")).to_have_text("Marc Petit a été retiré du groupe.")
    expect(member_row(page, "Marc Petit")).to_have_count(0)
    expect(page.locator("#members-title")).to_have_text("Membres · 1 membre")
