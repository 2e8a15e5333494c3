"""People for the browser tests, made through the real services (as `hdsapp users add` does)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
from playwright.sync_api import Page, expect

from hdsapp.config import Settings
from hdsapp.core.actor import Role, system_actor
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database, utcnow
from hdsapp.groups import service as groups
from hdsapp.identity import service as identity

PASSWORD = "Ordonnance-bleue-2026"


@dataclass
class Person:
    user_id: uuid.UUID
    email: str
    display_name: str
    password: str
    totp_secret: str
    # TOTP steps already spent: the server accepts a code once, so each use takes a new step.
    _used: set[int] = field(default_factory=set)

    def otp(self) -> str:
        """A code the server accepts now (pyotp; the next step when this one is spent: the
        server allows one step of drift)."""
        step = int(time.time()) // 30
        while step in self._used:
            step += 1
        self._used.add(step)
        code: str = pyotp.TOTP(self.totp_secret).at(step * 30)
        return code


@dataclass
class People:
    database: Database
    settings: Settings
    keyring: Keyring
    _rpps: Iterator[int] = field(default_factory=lambda: iter(range(10_000_000_001, 10**11)))

    def add(self, email: str, display_name: str, *, profession: str = "10") -> Person:
        with self.database.unit_of_work() as session:
            created = identity.create_user(
                session=session,
                actor=system_actor(),
                email=email,
                display_name=display_name,
                password=PASSWORD,
                rpps=str(next(self._rpps)),
                profession=profession,
                now=utcnow(),
            )
            assert created.totp_secret is not None
            return Person(created.user.id, email, display_name, PASSWORD, created.totp_secret)

    def group(self, name: str, coordinator: Person) -> uuid.UUID:
        """A care group, as the operator creates one (`hdsapp groups create`)."""
        with self.database.unit_of_work() as session:
            created = groups.create_group(
                session=session,
                database=self.database,
                actor=system_actor(),
                settings=self.settings,
                keyring=self.keyring,
                name=name,
                description=None,
                coordinator_email=coordinator.email,
            )
            return created.id

    def join(self, group_id: uuid.UUID, person: Person, role: str) -> None:
        """As `hdsapp groups add-member` does."""
        with self.database.unit_of_work() as session:
            groups.add_member(
                session=session,
                database=self.database,
                actor=system_actor(),
                settings=self.settings,
                group_id=group_id,
                email=person.email,
                role=Role(role),
            )


def sign_in(page: Page, person: Person, *, start: str = "/") -> None:
    """Fill the sign-in form as a person would, and wait for the app behind it."""
    page.goto(start)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    page.get_by_label("Adresse e-mail").fill(person.email)
    page.get_by_label("Mot de passe", exact=True).fill(person.password)
    page.get_by_label("Code de vérification").fill(person.otp())
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#topbar")).to_be_visible()
