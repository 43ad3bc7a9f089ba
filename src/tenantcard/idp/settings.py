"""Identity provider settings: pydantic-settings, built by the caller and handed to ``create_app(settings)``.

Sources, highest first: constructor arguments, environment variables ``TENANTCARD_IDP_*``, a TOML file named by
``toml_file`` (the CLI's ``--config``), defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class IdpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TENANTCARD_IDP_", extra="forbid", frozen=True)

    issuer: str = Field(default="http://127.0.0.1:8600", description="Issuer URL (iss); also the endpoints' base")
    db_url: str = Field(default="sqlite:///idp.db", description="SQLAlchemy URL (sqlite:/// or postgresql+psycopg://)")
    operator_url: str | None = Field(default=None, description="Operator service base URL (device directory)")
    operator_token: SecretStr | None = Field(default=None, description="Bearer credential for the operator directory")
    operator_ca_pem: Path | None = Field(
        default=None, description="Operator root CA certificate (PEM); fetched from the operator when absent"
    )
    code_lifetime_seconds: int = Field(default=60, ge=5, le=600, description="Authorization code lifetime")
    id_token_lifetime_seconds: int = Field(default=300, ge=30, le=86400)
    access_token_lifetime_seconds: int = Field(default=300, ge=30, le=86400)
    device_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    allow_direct_addresses: bool = Field(
        default=True, description="Accept tcp://host:port in login_hint (else only handles the operator resolves)"
    )
    default_login_method: str = "device"
    migrate_on_start: bool = True
    toml_file: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        values: dict[str, Any] = init_settings()
        toml = values.get("toml_file")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> IdpSettings:
    """Settings from ``config`` (TOML), the environment and ``overrides`` (None values are ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return IdpSettings(toml_file=config, **given)
