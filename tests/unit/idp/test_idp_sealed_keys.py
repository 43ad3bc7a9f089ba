"""The signing keys and the pairwise-subject secret are stored sealed under the key vault's master key: the
database (rows and file) never holds their clear bytes, a wrong vault stops the start, and a database written
before sealing is sealed by its upgrade."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from joserfc.jwk import ECKey

from tenantcard.idp.app import PAIRWISE_SECRET, ConfigurationError, create_app
from tenantcard.idp.db.engine import MIGRATIONS, make_engine, upgrade
from tenantcard.idp.oidc.keys import KeyService
from tenantcard.idp.sealing import VaultRequired, secret_aad, signing_key_aad
from tenantcard.idp.settings import IdpSettings, resolve_vault_uri
from tenantcard.keyvault import PIN_ENV, FileKeyVault, KeyVault, open_vault
from tests.support.services import SoftHsmToken
from tests.unit.idp.idp_support import InMemoryDirectory, new_ca

ISSUER = "http://127.0.0.1:8600"


def _start(db_url: str, vault_uri: str | None = None) -> KeyService:
    app = create_app(
        IdpSettings(issuer=ISSUER, db_url=db_url, vault_uri=vault_uri),
        directory=InMemoryDirectory(),
        root_ca=new_ca().cert,
    )
    keys: KeyService = app.state.keys
    app.state.engine.dispose()
    return keys


def _raw_rows(db_url: str) -> bytes:
    """Every value of the two tables that hold keys, as bytes, straight from the database."""
    engine = make_engine(db_url)
    out = b""
    with engine.connect() as connection:
        for table in ("idp_signing_keys", "idp_secrets"):
            for row in connection.execute(sa.text(f"SELECT * FROM {table}")):
                for value in row:
                    out += value if isinstance(value, bytes) else str(value).encode()
    engine.dispose()
    return out


def _secrets_in_clear(vault: KeyVault, db_url: str) -> list[bytes]:
    """The private scalar of every signing key and the pairwise secret, unsealed with ``vault``, in each form
    they could be stored in (raw bytes, hex, base64url)."""
    engine = make_engine(db_url)
    found: list[bytes] = []
    with engine.connect() as connection:
        for kid, sealed in connection.execute(sa.text("SELECT kid, private_sealed FROM idp_signing_keys")):
            jwk = json.loads(vault.unseal(bytes(sealed), signing_key_aad(kid)))
            d = jwk["d"]
            found.append(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))
        for name, sealed in connection.execute(sa.text("SELECT name, sealed FROM idp_secrets")):
            found.append(vault.unseal(bytes(sealed), secret_aad(name)))
    engine.dispose()
    forms = []
    for secret in found:
        assert len(secret) == 32
        forms += [secret, secret.hex().encode(), base64.urlsafe_b64encode(secret).rstrip(b"=")]
    return forms


def _sqlite_files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_default_vault_is_a_0600_file_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "idp.db"
    keys = _start(f"sqlite:///{db}")
    vault_file = tmp_path / "idp.db.master.key"
    assert resolve_vault_uri(IdpSettings(db_url=f"sqlite:///{db}")) == f"file:{vault_file}"
    assert vault_file.stat().st_mode & 0o777 == 0o600
    _, key = keys.signing_key()
    assert key.as_dict(private=True)["d"]


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://u@localhost/x"])
def test_a_database_without_a_file_needs_an_explicit_vault(url: str) -> None:
    with pytest.raises(ConfigurationError, match="vault_uri is required"):
        create_app(IdpSettings(db_url=url), directory=InMemoryDirectory(), root_ca=new_ca().cert)


def test_no_key_or_secret_bytes_in_the_sqlite_rows_or_file(tmp_path: Path) -> None:
    db = tmp_path / "idp.db"
    url = f"sqlite:///{db}"
    keys = _start(url)
    keys.rotate()  # two keys, one retired
    vault = FileKeyVault(tmp_path / "idp.db.master.key")
    clear = _secrets_in_clear(vault, url)
    assert len(clear) == 3 * 3  # two keys and the pairwise secret, three encodings each
    rows, files = _raw_rows(url), _sqlite_files(db)
    assert rows and files
    for secret in clear:
        assert secret not in rows
        assert secret not in files


def test_no_key_or_secret_bytes_in_the_postgresql_rows(tmp_path: Path, postgres_url: str) -> None:
    vault_uri = f"file:{tmp_path / 'pg.master.key'}"
    _start(postgres_url, vault_uri).rotate()
    clear = _secrets_in_clear(open_vault(vault_uri), postgres_url)
    rows = _raw_rows(postgres_url)
    for secret in clear:
        assert secret not in rows


def test_a_wrong_vault_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idp.db'}"
    first = _start(url, f"file:{tmp_path / 'right.key'}")
    with pytest.raises(ConfigurationError) as refused:
        _start(url, f"file:{tmp_path / 'wrong.key'}")
    message = str(refused.value)
    assert "key vault does not open this database's sealed keys" in message
    # the error names the problem, not the key
    key = first.signing_key()[1].as_dict(private=True)["d"]
    assert isinstance(key, str) and key not in message
    # the right vault still starts, with the same key
    assert _start(url, f"file:{tmp_path / 'right.key'}").signing_key()[0] == first.signing_key()[0]


def test_an_unusable_vault_refuses_to_start(tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(bytes(32))
    loose.chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"key vault unavailable: .*0600"):
        _start(f"sqlite:///{tmp_path / 'idp.db'}", f"file:{loose}")


def test_pkcs11_vault(tmp_path: Path, softhsm: SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, softhsm.user_pin)
    label = f"idp-master-{uuid.uuid4().hex[:8]}"
    uri = f"pkcs11:module={softhsm.module};token={softhsm.label};key={label}"
    url = f"sqlite:///{tmp_path / 'idp.db'}"
    kid = _start(url, uri).signing_key()[0]
    assert _start(url, uri).signing_key()[0] == kid  # a restart opens the keys on the token
    for secret in _secrets_in_clear(open_vault(uri), url):
        assert secret not in _sqlite_files(tmp_path / "idp.db")
    other = f"pkcs11:module={softhsm.module};token={softhsm.label};key={label}-other"
    with pytest.raises(ConfigurationError, match="does not open"):
        _start(url, other)


def _database_at_0002(url: str) -> tuple[str, bytes, bytes]:
    """A database as revision 0002 wrote it: a signing key and the pairwise secret in clear."""
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    key = ECKey.generate_key("P-256", private=True)
    jwk = {k: str(v) for k, v in key.as_dict(private=True).items()}
    jwk.update(kid=key.thumbprint(), alg="ES256", use="sig")
    secret = bytes(range(32))
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO idp_signing_keys (kid, private_jwk, created_at) VALUES (:k, :j, 1)"),
            {"k": key.thumbprint(), "j": json.dumps(jwk)},
        )
        connection.execute(
            sa.text("INSERT INTO idp_secrets (name, value) VALUES (:n, :v)"), {"n": PAIRWISE_SECRET, "v": secret}
        )
    engine.dispose()
    d = jwk["d"]
    return key.thumbprint(), base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)), secret


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_upgrade_seals_what_an_older_revision_stored_in_clear(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    kid, scalar, secret = _database_at_0002(url)
    vault_uri = f"file:{tmp_path / 'old.master.key'}"

    # without a vault, the upgrade refuses rather than leave the keys in clear
    engine = make_engine(url)
    with pytest.raises(VaultRequired):
        upgrade(engine)
    engine.dispose()

    keys = _start(url, vault_uri)
    assert keys.signing_key()[0] == kid  # the old key keeps signing: relying parties see no change
    vault = open_vault(vault_uri)
    assert sorted(_secrets_in_clear(vault, url)) == sorted(
        [
            form
            for value in (scalar, secret)
            for form in (value, value.hex().encode(), base64.urlsafe_b64encode(value).rstrip(b"="))
        ]
    )
    rows = _raw_rows(url)
    for value in (scalar, secret):
        assert value not in rows and base64.urlsafe_b64encode(value).rstrip(b"=") not in rows
    if database == "sqlite":
        files = _sqlite_files(tmp_path / "old.db")
        for value in (scalar, secret):
            assert value not in files and base64.urlsafe_b64encode(value).rstrip(b"=") not in files
