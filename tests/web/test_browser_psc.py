"""With Pro Santé Connect configured, the sign-in page offers it (and says so in both languages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hdsapp.config import Settings
from tests.conftest import make_settings
from tests.web.a11y import assert_accessible
from tests.web.conftest import Shoot

pytestmark = pytest.mark.browser

PSC = {
    "profile": "psc",
    "issuer": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
    "client_id": "hdsapp",
    "client_secret": "s3cret",
}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url=database_url, oidc_providers=json.dumps({"psc": PSC})
    )


def test_signin_offers_pro_sante_connect(page: Page, shoot: Shoot) -> None:
    page.goto("/")
    button = page.get_by_role("link", name="Se connecter avec Pro Santé Connect")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("href", "/api/v1/auth/oidc/psc/login")
    # The password form stays, below an "or".
    expect(page.get_by_text("ou", exact=True)).to_be_visible()
    expect(page.get_by_label("Adresse e-mail")).to_be_visible()
    assert_accessible(page)
    shoot(page, "signin-psc")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("link", name="Sign in with Pro Santé Connect")).to_be_visible()
