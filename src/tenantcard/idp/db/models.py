"""Tables of the identity provider (SQLite by default, PostgreSQL by URL). Schema changes go through Alembic."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ClientRow(Base):
    """A registered relying party (a service provider). The secret is stored only as a scrypt hash."""

    __tablename__ = "idp_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    secret_salt: Mapped[bytes] = mapped_column(LargeBinary)
    redirect_uris: Mapped[str] = mapped_column(Text)  # JSON list, compared by exact string match
    sector_identifier: Mapped[str] = mapped_column(String(255))
    disclosure: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(Integer)


class SigningKeyRow(Base):
    """An ES256 signing key. ``retired_at`` is set when a newer key takes over; it stays published until
    every token it signed has expired (``publish_until``). The private JWK is sealed under the key vault's
    master key (associated data names the kid); only the public JWK is in clear."""

    __tablename__ = "idp_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_jwk: Mapped[str] = mapped_column(Text)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(Integer)
    retired_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    publish_until: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuthorizationCodeRow(Base):
    """An authorization code, stored by its SHA-256 hash. ``used_at`` makes it single-use (RFC 6749 §4.1.2)."""

    __tablename__ = "idp_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    login_method: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    device_address: Mapped[str] = mapped_column(Text)
    amr: Mapped[str] = mapped_column(Text)  # JSON list
    auth_time: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AccessTokenRow(Base):
    """An access token (for the userinfo endpoint), stored by its SHA-256 hash, linked to the code it came from."""

    __tablename__ = "idp_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    claims: Mapped[str] = mapped_column(Text)  # JSON object served by userinfo
    expires_at: Mapped[int] = mapped_column(Integer)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SecretRow(Base):
    """Server secrets generated on first start (the pairwise-subject key), sealed under the key vault's master
    key (associated data names the secret)."""

    __tablename__ = "idp_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class SubjectRow(Base):
    """A pairwise subject issued to a sector, and the device it stands for: lets a provider name the device
    by the ``sub`` it already holds (as ``login_hint``) without learning the device id or address."""

    __tablename__ = "idp_subjects"

    sector_identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    sub: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(Integer)
