"""Operator settings: environment variables ``TENANTCARD_OPERATOR_*``, a TOML file (the CLI's ``--config``),
arguments; their order and loading are those of every service (``tenantcard.settings``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tenantcard.settings import ServiceSettings


class OperatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TENANTCARD_OPERATOR_")

    db_url: str = Field(
        default="sqlite:///operator.db", description="SQLAlchemy URL (sqlite:/// or postgresql+psycopg://)"
    )
    vault_uri: str = Field(
        default="file:operator-master.key",
        description="Key vault holding the master key that wraps the operator's ISD keys and CA key",
    )
    admin_token: SecretStr | None = Field(default=None, description="Bearer credential of the operator's staff")
    device_store_dir: Path = Field(default=Path("devices"), description="Where manufacturing writes device stores")
    device_vault_template: str = Field(
        default="file:{store_dir}/{device_id}.seal",
        description="Key vault URI of a manufactured device's sealing key; {store_dir} and {device_id} are filled in",
    )
    authorization_ttl_seconds: int = Field(default=3600, ge=10, description="Lifetime of an untaken authorization")
    consent_max_attempts: int = Field(default=5, ge=1)
    auth_failure_limit: int = Field(default=10, ge=1, description="Credential failures per source and window")
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    idp_proof_window_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Age limit of the device login proof an identity provider shows"
    )
    device_timeout_seconds: float = Field(default=5.0, gt=0)
    device_lock_seconds: float = Field(default=60.0, gt=0, description="Lease of the per-device operation lock")
    device_lock_wait_seconds: float = Field(default=10.0, ge=0)
    job_poll_seconds: float = Field(default=0.5, gt=0)
    job_item_delay_seconds: float = Field(default=0.0, ge=0, description="Pause between two items of a job")
    job_retry_base_seconds: float = Field(default=1.0, gt=0)
    job_retry_max_seconds: float = Field(default=300.0, gt=0)
    job_max_attempts: int = Field(default=20, ge=1)
    sweep_seconds: float = Field(default=30.0, gt=0, description="Period of the expired-authorization sweep")
    run_workers: bool = Field(default=True, description="Run the job runner and sweep in this process")
    migrate_on_start: bool = True


load_settings = OperatorSettings.load
