"""Fixtures of the operator's integration tests: the operator over real HTTP (uvicorn on 127.0.0.1:0); the
devices, providers and jobs it works with come from tests/support/operator_rig.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tenantcard.operator.app import create_app
from tenantcard.operator.settings import OperatorSettings
from tests.support.operator_rig import ADMIN


class LiveOperator:
    """create_app(settings) served by uvicorn in a thread."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveOperator:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("operator did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def client(self, credential: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN)


def operator_settings(tmp_path: Path, db_url: str, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "vault_uri": f"file:{tmp_path / 'master.key'}",
        "admin_token": ADMIN,
        "device_store_dir": tmp_path / "devices",
        "job_poll_seconds": 0.1,
        "job_retry_base_seconds": 0.2,
        "job_retry_max_seconds": 1.0,
        "auth_failure_limit": 5,
        "device_lock_wait_seconds": 10.0,
    }
    values.update(overrides)
    return OperatorSettings(**values)


@pytest.fixture
def live_operator(db_url: str, tmp_path: Path) -> Iterator[LiveOperator]:
    op = LiveOperator(operator_settings(tmp_path, db_url)).start()
    yield op
    op.stop()
