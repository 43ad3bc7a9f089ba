"""Signing keys with rotation by kid, and client registration with hashed secrets."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tenantcard.idp.db.engine import make_engine, upgrade
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.domain import Disclosure
from tenantcard.idp.errors import ClientRegistrationError
from tenantcard.idp.oidc.clients import ClientService, verify_secret
from tenantcard.idp.oidc.keys import KeyService
from tenantcard.keyvault import FileKeyVault


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault(tmp_path: Path) -> FileKeyVault:
    return FileKeyVault(tmp_path / "idp.master.key")


@pytest.fixture
def repository(tmp_path: Path, vault: FileKeyVault) -> IdpRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'idp.db'}")
    upgrade(engine, vault)
    upgrade(engine, vault)  # idempotent
    return IdpRepository(engine)


def test_first_key_is_created_once(repository: IdpRepository, vault: FileKeyVault) -> None:
    keys = KeyService(repository, vault, Clock(), token_lifetime=300)
    kid = keys.ensure_key()
    assert keys.ensure_key() == kid
    published = keys.published()["keys"]
    assert [k["kid"] for k in published] == [kid]
    assert published[0]["kty"] == "EC" and published[0]["crv"] == "P-256"
    assert "d" not in published[0]


def test_rotation_keeps_the_old_key_until_its_tokens_expired(repository: IdpRepository, vault: FileKeyVault) -> None:
    clock = Clock()
    keys = KeyService(repository, vault, clock, token_lifetime=300, leeway=60)
    old_kid = keys.ensure_key()
    kid, key = keys.signing_key()
    old_token = jwt.encode({"alg": "ES256", "kid": kid}, {"sub": "x"}, key, algorithms=["ES256"])

    clock.now += 10
    new_kid = keys.rotate()
    assert new_kid != old_kid
    assert keys.signing_key()[0] == new_kid
    published = KeySet.import_key_set(keys.published())  # type: ignore[arg-type]
    assert {k.kid for k in published} == {old_kid, new_kid}
    assert jwt.decode(old_token, published, algorithms=["ES256"]).claims == {"sub": "x"}

    clock.now += 300 + 60  # every token of the old key has expired
    assert [k["kid"] for k in keys.published()["keys"]] == [new_kid]


def test_two_rotations_in_a_row(repository: IdpRepository, vault: FileKeyVault) -> None:
    clock = Clock()
    keys = KeyService(repository, vault, clock, token_lifetime=300)
    first = keys.ensure_key()
    second = keys.rotate()
    clock.now += 100
    third = keys.rotate()
    assert keys.signing_key()[0] == third
    assert {k["kid"] for k in keys.published()["keys"]} == {first, second, third}
    clock.now += 300
    assert {k["kid"] for k in keys.published()["keys"]} == {second, third}


def test_client_secret_is_stored_hashed_and_verified(repository: IdpRepository) -> None:
    clients = ClientService(repository, Clock(), secrets.token_bytes)
    new = clients.register("Bank", ["https://bank.example/cb"], Disclosure.DEVICE_ID)
    stored = clients.get(new.client.client_id)
    assert stored is not None
    assert stored.sector_identifier == "bank.example"
    assert stored.disclosure is Disclosure.DEVICE_ID
    assert new.client_secret.encode() not in stored.secret_hash
    assert verify_secret(stored, new.client_secret)
    assert not verify_secret(stored, new.client_secret + "x")
    assert not verify_secret(stored, "é")


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["not a uri"],
        ["ftp://bank.example/cb"],
        ["https://bank.example/cb#frag"],
        ["https://bank.example/c b"],
        ["https://a.example/cb", "https://b.example/cb"],  # two hosts and no sector identifier
    ],
)
def test_bad_registrations_are_refused(repository: IdpRepository, uris: list[str]) -> None:
    clients = ClientService(repository, Clock(), secrets.token_bytes)
    with pytest.raises(ClientRegistrationError):
        clients.register("Bank", uris)


def test_several_hosts_with_a_sector_identifier(repository: IdpRepository) -> None:
    clients = ClientService(repository, Clock(), secrets.token_bytes)
    new = clients.register("Bank", ["https://a.example/cb", "https://b.example/cb"], sector_identifier="bank")
    assert new.client.sector_identifier == "bank"
