"""Manufacturing a device store (DESIGN.md "Manufacture"): device id, identity key and certificate chain,
the operator's ISD key set, the initial containers.

``dev_spec`` is for development only: it gives the ISD the well-known GlobalPlatform test key set
40 41 .. 4F (KVN 30), published in every GP tool's documentation, and a self-made CA. A device made with it is
NOT SECURE: anyone can open the operator's domain on it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.crypto.identity import DEVICE_ID_LENGTH, issue_device_certificate, make_ca
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.domain import MAX_AUTH_TRIES, encode_keys
from tenantcard.device.errors import StoreError
from tenantcard.device.store import DEFAULT_CAPACITY, ISD_OWNER, KeyRole, Store
from tenantcard.keyvault import KeyVault

DEFAULT_QUOTA = 64 * 1024
GP_TEST_KEY = bytes(range(0x40, 0x50))
GP_TEST_KVN = 0x30


@dataclass(frozen=True)
class ContainerSpec:
    quota_bytes: int = DEFAULT_QUOTA
    reserved_bytes: int = 0


@dataclass(frozen=True)
class DeviceSpec:
    """Everything a store is created from. ``root`` is informational (the CA that issued the chain)."""

    device_id: bytes
    serial: str
    isd_keys: StaticKeys
    identity_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate_chain: list[x509.Certificate]
    containers: list[ContainerSpec] | int = 0
    capacity_bytes: int = DEFAULT_CAPACITY
    root: x509.Certificate | None = None

    def container_specs(self) -> list[ContainerSpec]:
        if isinstance(self.containers, int):
            return [ContainerSpec() for _ in range(self.containers)]
        return list(self.containers)


def create_device_store(
    path: Path, spec: DeviceSpec, vault: KeyVault, *, random: Callable[[int], bytes] = os.urandom
) -> None:
    """Create the store of a new device; refuses to overwrite an existing store (StoreError)."""
    if len(spec.device_id) != DEVICE_ID_LENGTH:
        raise StoreError("device id must be 10 bytes")
    if not isinstance(spec.identity_key, ec.EllipticCurvePrivateKey) or not isinstance(
        spec.identity_key.curve, ec.SECP256R1
    ):
        raise StoreError("identity key must be ECDSA P-256")
    if not spec.certificate_chain:
        raise StoreError("certificate chain is empty")
    leaf_key = spec.certificate_chain[0].public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or leaf_key != spec.identity_key.public_key():
        raise StoreError("device certificate does not certify the identity key")
    containers = spec.container_specs()
    if sum(c.reserved_bytes for c in containers) > spec.capacity_bytes:
        raise StoreError("containers reserve more memory than the device has")
    if any(c.reserved_bytes > c.quota_bytes or c.quota_bytes <= 0 for c in containers):
        raise StoreError("a container reserves more than its quota")
    path = Path(path)
    store = Store.create(path, vault, spec.device_id, random=random)
    ok = False
    try:
        with store.transaction():
            store.put_meta("serial", spec.serial.encode())
            store.put_meta("capacity", spec.capacity_bytes.to_bytes(8, "big"))
            chain = b"".join(c.public_bytes(serialization.Encoding.DER) for c in spec.certificate_chain)
            store.put_meta("certificate_chain", chain)
            der = spec.identity_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            store.put_secret("identity_key", der)
            store.put_keyset(ISD_OWNER, KeyRole.OPERATOR, spec.isd_keys.kvn, encode_keys(spec.isd_keys), MAX_AUTH_TRIES)
            for index, c in enumerate(containers):
                store.add_container(index, c.quota_bytes, c.reserved_bytes)
        ok = True
    finally:
        store.close()
        if not ok:  # never leave a half-made store behind
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)


def gp_test_keys() -> StaticKeys:
    """The public GlobalPlatform test key set (ENC = MAC = DEK = 40..4F, KVN 30). INSECURE."""
    return StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KVN)


def dev_spec(
    containers: int | list[ContainerSpec] = 4,
    *,
    device_id: bytes | None = None,
    serial: str | None = None,
    isd_keys: StaticKeys | None = None,
    capacity_bytes: int = DEFAULT_CAPACITY,
    valid_days: int = 3650,
) -> DeviceSpec:
    """A development device: INSECURE well-known ISD keys (unless ``isd_keys``) and a throw-away CA.

    The chain holds the device certificate; ``spec.root`` is the development CA that issued it.
    """
    did = device_id if device_id is not None else os.urandom(DEVICE_ID_LENGTH)
    ser = serial if serial is not None else "DEV-" + did.hex().upper()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca("tenantcard development CA (insecure)", ca_key)
    identity = ec.generate_private_key(ec.SECP256R1())
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=valid_days)
    cert = issue_device_certificate(ca_key, ca, identity.public_key(), did, ser, not_after)
    return DeviceSpec(
        device_id=did,
        serial=ser,
        isd_keys=isd_keys if isd_keys is not None else gp_test_keys(),
        identity_key=identity,
        certificate_chain=[cert],
        containers=containers,
        capacity_bytes=capacity_bytes,
        root=ca,
    )
