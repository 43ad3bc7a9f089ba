"""Manufacturing: the operator CA, and the factory step that gives a device its identity and operator keys.

A device gets a 10-byte random id (also its SCP03 key-diversification data), an ECDSA P-256 identity key
with a certificate from the operator CA, the operator's SCP03 key set for its ISD (kept here wrapped under
the master key) and its initial containers; the device store that ``tenantcard device serve`` runs is
written by ``tenantcard.device.provision`` (the only device module the operator uses: the factory step).
"""

from __future__ import annotations

import datetime
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.exc import IntegrityError

from tenantcard.crypto.identity import issue_device_certificate, make_ca
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import Device, DeviceStatus, Secret
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.device_ops import isd_purpose
from tenantcard.operator.services.errors import Conflict, InvalidRequest

CA_SECRET = "ca"
CA_NAME = "tenantcard operator CA"
OPERATOR_KVN = 0x30
CERT_YEARS = 10
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class ContainerPlan:
    """One initial container; they get indexes 0, 1, 2, ... in order."""

    quota: int
    reserved: int = 0


@dataclass(frozen=True)
class Manufactured:
    device: Device
    store_path: Path
    vault_uri: str


class Manufacturing:
    def __init__(self, env: Env) -> None:
        self._env = env
        self._ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        self._lock = threading.Lock()

    # --- the CA -------------------------------------------------------------------------------------------
    def _load_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        with self._lock:
            if self._ca is None:
                env = self._env
                try:
                    with env.db.transaction() as s:
                        row = s.get(Secret, CA_SECRET)
                        if row is None:
                            key = ec.generate_private_key(ec.SECP256R1())
                            now = datetime.datetime.fromtimestamp(env.clock(), datetime.UTC)
                            cert = make_ca(CA_NAME, key, not_before=now - datetime.timedelta(minutes=5))
                            row = Secret(
                                name=CA_SECRET,
                                wrapped=env.custody.wrap_private_key(f"secret:{CA_SECRET}", key),
                                public=cert.public_bytes(serialization.Encoding.PEM).decode(),
                                created_at=env.now(),
                            )
                            s.add(row)
                            env.audit.append(s, "operator", "ca.created", CA_SECRET)
                except IntegrityError:  # another process created it first
                    with env.db.transaction() as s:
                        row = s.get(Secret, CA_SECRET)
                        assert row is not None
                key = env.custody.unwrap_private_key(f"secret:{CA_SECRET}", row.wrapped)
                self._ca = (key, x509.load_pem_x509_certificate(row.public.encode()))
            return self._ca

    def ca_certificate(self) -> x509.Certificate:
        return self._load_ca()[1]

    def ca_pem(self) -> str:
        return self.ca_certificate().public_bytes(serialization.Encoding.PEM).decode()

    # --- a device -----------------------------------------------------------------------------------------
    def manufacture(
        self,
        containers: list[ContainerPlan],
        *,
        serial: str | None = None,
        store_path: Path | None = None,
        vault_uri: str | None = None,
        actor: str = "admin",
    ) -> Manufactured:
        # The factory step: the one place the operator writes a device's own store.
        from tenantcard.device.errors import StoreError
        from tenantcard.device.provision import ContainerSpec, DeviceSpec, create_device_store
        from tenantcard.keyvault import KeyVaultError, open_vault

        env = self._env
        settings = env.settings
        if serial is not None and not _SERIAL.match(serial):
            raise InvalidRequest("serial must be 1-64 letters, digits, '.', '_' or '-'")
        for plan in containers:
            if plan.quota <= 0 or not 0 <= plan.reserved <= plan.quota:
                raise InvalidRequest("each container needs a positive quota and 0 <= reserved <= quota")
        device_id = env.random(10)
        hex_id = device_id.hex()
        serial = serial or f"TC-{hex_id[:12].upper()}"
        with env.db.transaction() as s:
            if repo.device_by_serial(s, serial) is not None:
                raise Conflict("a device with that serial exists", code="serial_taken")
        ca_key, ca_cert = self._load_ca()
        identity = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.fromtimestamp(env.clock(), datetime.UTC)
        cert = issue_device_certificate(
            ca_key,
            ca_cert,
            identity.public_key(),
            device_id,
            serial,
            now + datetime.timedelta(days=365 * CERT_YEARS),
            not_before=now - datetime.timedelta(minutes=5),
        )
        isd_keys = StaticKeys.generate(OPERATOR_KVN, 16, random=env.random)
        store_dir = Path(settings.device_store_dir)
        store_dir.mkdir(parents=True, exist_ok=True)
        path = store_path or store_dir / f"{hex_id}.db"
        uri = vault_uri or settings.device_vault_template.format(store_dir=store_dir, device_id=hex_id)
        spec = DeviceSpec(
            device_id=device_id,
            serial=serial,
            isd_keys=isd_keys,
            identity_key=identity,
            certificate_chain=[cert],
            containers=[ContainerSpec(p.quota, p.reserved) for p in containers],
            root=ca_cert,
        )
        try:
            create_device_store(path, spec, open_vault(uri))
        except (StoreError, KeyVaultError) as exc:
            raise InvalidRequest(f"cannot write the device store: {exc}") from exc
        device = Device(
            id=hex_id,
            serial=serial,
            status=DeviceStatus.ACTIVE,
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            isd_kvn=isd_keys.kvn,
            isd_keys_wrapped=env.custody.wrap_keys(isd_purpose(hex_id, isd_keys.kvn), isd_keys),
            created_at=env.now(),
        )
        try:
            with env.db.transaction() as s:
                s.add(device)
                s.flush()
                env.audit.append(
                    s, actor, "device.manufactured", hex_id, {"serial": serial, "containers": len(containers)}
                )
        except IntegrityError as exc:
            path.unlink(missing_ok=True)
            raise Conflict("a device with that serial exists", code="serial_taken") from exc
        return Manufactured(device, path, uri)
