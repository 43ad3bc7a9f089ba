"""Identity provider settings: environment variables ``TENANTCARD_IDP_*``, a TOML file (the CLI's ``--config``),
arguments; their order and loading are those of every service (``tenantcard.settings``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url

from tenantcard.settings import ServiceSettings


class IdpSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TENANTCARD_IDP_")

    issuer: str = Field(default="http://127.0.0.1:8600", description="Issuer URL (iss); also the endpoints' base")
    db_url: str = Field(default="sqlite:///idp.db", description="SQLAlchemy URL (sqlite:/// or postgresql+psycopg://)")
    operator_url: str | None = Field(default=None, description="Operator service base URL (device directory)")
    operator_token: SecretStr | None = Field(
        default=None, description="The IdP credential the operator issued (tenantcard operator idp register)"
    )
    vault_uri: str | None = Field(
        default=None,
        description="Key vault (file:PATH or pkcs11:...) whose master key seals the signing keys and the "
        "pairwise-subject secret; default: a 0600 file next to the SQLite database",
    )
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


def resolve_vault_uri(settings: IdpSettings) -> str:
    """The vault URI of ``settings``: ``vault_uri`` if given, else ``file:<database>.master.key`` beside a SQLite
    database file. An in-memory or server database has no "beside": it needs an explicit ``vault_uri``."""
    if settings.vault_uri:
        return settings.vault_uri
    url = make_url(settings.db_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        raise ValueError("vault_uri is required unless the database is a SQLite file")
    return "file:" + str(Path(database).with_name(Path(database).name + ".master.key"))


load_settings = IdpSettings.load
