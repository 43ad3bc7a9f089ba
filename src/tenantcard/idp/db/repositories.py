"""Repositories: the only code that touches the tables. Each method is one transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tenantcard.idp.db.models import (
    AccessTokenRow,
    AuthorizationCodeRow,
    ClientRow,
    SecretRow,
    SigningKeyRow,
    SubjectRow,
)
from tenantcard.idp.domain import AccessToken, AuthorizationCode, Disclosure, RegisteredClient, SigningKey


def _client(row: ClientRow) -> RegisteredClient:
    return RegisteredClient(
        client_id=row.client_id,
        name=row.name,
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        sector_identifier=row.sector_identifier,
        disclosure=Disclosure(row.disclosure),
        secret_hash=row.secret_hash,
        secret_salt=row.secret_salt,
        created_at=row.created_at,
    )


def _key(row: SigningKeyRow) -> SigningKey:
    return SigningKey(
        kid=row.kid,
        public_jwk=json.loads(row.public_jwk),
        private_sealed=row.private_sealed,
        created_at=row.created_at,
        retired_at=row.retired_at,
        publish_until=row.publish_until,
    )


def _code(row: AuthorizationCodeRow) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash,
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        login_method=row.login_method,
        device_id=row.device_id,
        device_address=row.device_address,
        amr=tuple(json.loads(row.amr)),
        auth_time=row.auth_time,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def _token(row: AccessTokenRow) -> AccessToken:
    claims: dict[str, Any] = json.loads(row.claims)
    return AccessToken(
        token_hash=row.token_hash,
        code_hash=row.code_hash,
        client_id=row.client_id,
        claims=claims,
        expires_at=row.expires_at,
        revoked=row.revoked,
    )


class IdpRepository:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    # -- clients
    def add_client(self, client: RegisteredClient) -> None:
        with self._session() as s, s.begin():
            s.add(
                ClientRow(
                    client_id=client.client_id,
                    name=client.name,
                    secret_hash=client.secret_hash,
                    secret_salt=client.secret_salt,
                    redirect_uris=json.dumps(list(client.redirect_uris)),
                    sector_identifier=client.sector_identifier,
                    disclosure=client.disclosure.value,
                    created_at=client.created_at,
                )
            )

    def get_client(self, client_id: str) -> RegisteredClient | None:
        with self._session() as s:
            row = s.get(ClientRow, client_id)
            return _client(row) if row is not None else None

    def list_clients(self) -> list[RegisteredClient]:
        with self._session() as s:
            return [_client(r) for r in s.scalars(select(ClientRow).order_by(ClientRow.created_at))]

    # -- signing keys
    def add_key(self, key: SigningKey, retire_others_at: int | None = None, publish_until: int | None = None) -> None:
        """Store ``key``; when ``retire_others_at`` is given, the keys still active are retired in the same
        transaction and stay published until ``publish_until``."""
        with self._session() as s, s.begin():
            if retire_others_at is not None:
                s.execute(
                    update(SigningKeyRow)
                    .where(SigningKeyRow.retired_at.is_(None))
                    .values(retired_at=retire_others_at, publish_until=publish_until)
                )
            s.add(
                SigningKeyRow(
                    kid=key.kid,
                    public_jwk=json.dumps(key.public_jwk),
                    private_sealed=key.private_sealed,
                    created_at=key.created_at,
                    retired_at=key.retired_at,
                    publish_until=key.publish_until,
                )
            )

    def signing_keys(self) -> list[SigningKey]:
        with self._session() as s:
            return [_key(r) for r in s.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at.desc()))]

    # -- authorization codes
    def add_code(self, code: AuthorizationCode) -> None:
        with self._session() as s, s.begin():
            s.add(
                AuthorizationCodeRow(
                    code_hash=code.code_hash,
                    client_id=code.client_id,
                    redirect_uri=code.redirect_uri,
                    scope=code.scope,
                    nonce=code.nonce,
                    code_challenge=code.code_challenge,
                    code_challenge_method=code.code_challenge_method,
                    login_method=code.login_method,
                    device_id=code.device_id,
                    device_address=code.device_address,
                    amr=json.dumps(list(code.amr)),
                    auth_time=code.auth_time,
                    expires_at=code.expires_at,
                    used_at=code.used_at,
                )
            )

    def purge(self, codes_before: int, tokens_before: int) -> None:
        """Drop codes that expired before ``codes_before`` and access tokens that expired before
        ``tokens_before`` (a used code is kept while a token it issued may live, so a replay still revokes)."""
        with self._session() as s, s.begin():
            s.execute(delete(AuthorizationCodeRow).where(AuthorizationCodeRow.expires_at < codes_before))
            s.execute(delete(AccessTokenRow).where(AccessTokenRow.expires_at < tokens_before))

    def get_code(self, code_hash: str) -> AuthorizationCode | None:
        with self._session() as s:
            row = s.get(AuthorizationCodeRow, code_hash)
            return _code(row) if row is not None else None

    def claim_code(self, code_hash: str, now: int) -> bool:
        """Mark the code used; True only for the one caller that found it unused (atomic, single use)."""
        with self._session() as s, s.begin():
            result = s.execute(
                update(AuthorizationCodeRow)
                .where(AuthorizationCodeRow.code_hash == code_hash, AuthorizationCodeRow.used_at.is_(None))
                .values(used_at=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        with self._session() as s:
            stmt = select(AuthorizationCodeRow.code_hash).where(
                AuthorizationCodeRow.client_id == client_id, AuthorizationCodeRow.nonce == nonce
            )
            return s.execute(stmt.limit(1)).first() is not None

    # -- access tokens
    def add_token(self, token: AccessToken) -> None:
        with self._session() as s, s.begin():
            s.add(
                AccessTokenRow(
                    token_hash=token.token_hash,
                    code_hash=token.code_hash,
                    client_id=token.client_id,
                    claims=json.dumps(token.claims),
                    expires_at=token.expires_at,
                    revoked=token.revoked,
                )
            )

    def get_token(self, token_hash: str) -> AccessToken | None:
        with self._session() as s:
            row = s.get(AccessTokenRow, token_hash)
            return _token(row) if row is not None else None

    def revoke_tokens_of_code(self, code_hash: str) -> int:
        with self._session() as s, s.begin():
            result = s.execute(update(AccessTokenRow).where(AccessTokenRow.code_hash == code_hash).values(revoked=True))
            return int(result.rowcount)  # type: ignore[attr-defined]

    # -- pairwise subjects
    def remember_subject(self, sector_identifier: str, sub: str, device_id: str, now: int) -> None:
        with self._session() as s, s.begin():
            if s.get(SubjectRow, (sector_identifier, sub)) is None:
                s.add(SubjectRow(sector_identifier=sector_identifier, sub=sub, device_id=device_id, created_at=now))

    def device_for_subject(self, sector_identifier: str, sub: str) -> str | None:
        with self._session() as s:
            row = s.get(SubjectRow, (sector_identifier, sub))
            return row.device_id if row is not None else None

    # -- secrets
    def get_or_create_secret(self, name: str, fresh_sealed: bytes) -> bytes:
        """The stored (sealed) secret ``name``; stores ``fresh_sealed`` first if there is none (first start)."""
        with self._session() as s, s.begin():
            row = s.get(SecretRow, name)
            if row is None:
                s.add(SecretRow(name=name, sealed=fresh_sealed))
                return fresh_sealed
            return row.sealed
