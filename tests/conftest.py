"""Fixtures shared by every layer's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.support.operator_rig import operators  # noqa: F401  (fixture: operator processes, stopped at the end)
from tests.support.paths import load_vectors
from tests.support.services import SoftHsmToken, fresh_postgres_database, init_softhsm_token
from tests.support.transports import card_connect  # noqa: F401  (fixture: one test over every transport)

pytest_plugins = ["tests.support.secret_scan"]

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def pysim_vectors() -> dict[str, Any]:
    return load_vectors("scp03-pysim.json")


@pytest.fixture(scope="session")
def more_vectors() -> dict[str, Any]:
    return load_vectors("scp03-more.json")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """A SoftHSM2 token for this test session (real PKCS#11 module, real token files).

    One per session: a PKCS#11 module reads SOFTHSM2_CONF once, when it is first initialized in a process.
    Tests keep apart by the labels of the objects they create.
    """
    return init_softhsm_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database on the real PostgreSQL server."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database a test runs on, once a SQLite file and once a new PostgreSQL database (``postgres_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'database.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
