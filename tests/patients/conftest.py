from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.groups.world import World, world
from tests.patients.fake_keyring import FakeKeyring

__all__ = ["world"]


@pytest.fixture
def keyring(app: FastAPI) -> object:
    """The app's key store; the in-memory stand-in while hdsapp.core.crypto.keyring is absent."""
    if getattr(app.state, "keyring", None) is None:
        app.state.keyring = FakeKeyring()
    return app.state.keyring


@pytest.fixture
def clinic(world: World, keyring: object) -> World:
    del keyring
    return world
