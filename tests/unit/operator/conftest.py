"""Fixtures of the operator's unit tests: each runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tenantcard.operator.app import build_services
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.settings import OperatorSettings


class Clock:
    """An injectable clock the tests move by hand."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> OperatorSettings:
    return OperatorSettings(
        db_url=db_url,
        vault_uri=f"file:{tmp_path / 'master.key'}",
        admin_token=SecretStr("staff-token-for-tests"),
        device_store_dir=tmp_path / "devices",
        run_workers=False,
        device_lock_wait_seconds=2.0,
        job_retry_base_seconds=0.05,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(settings: OperatorSettings, clock: Clock) -> Iterator[OperatorServices]:
    svc = build_services(settings, clock=clock)
    yield svc
    svc.env.db.dispose()
