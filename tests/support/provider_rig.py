"""A development device for the provider-side tests: a real sealed store, reachable in-process or over TCP,
and the operator's one ISD step (placing an authorization) done with the device's development ISD keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import ContainerSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.provider.sdk import AuthorizationBundle, tcp_connect
from tenantcard.transport.base import Connection, LocalConnection
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.gp import container_aid


class Rig:
    """A development device (ISD keys = the public GP test keys, standing in for the operator's) reachable
    in-process or over TCP, and the operator's one ISD step: placing an authorization."""

    def __init__(self, tmp_path: Path, transport: str, containers: int = 2, quota: int = 16 * 1024) -> None:
        vault = FileKeyVault(tmp_path / "vault.key")
        specs = [ContainerSpec(quota_bytes=quota) for _ in range(containers)]
        spec = dev_spec(specs, device_id=bytes.fromhex("0A0B0C0D0E0F10111213"))
        create_device_store(tmp_path / "device.db", spec, vault)
        self.device = Device.open(tmp_path / "device.db", vault)
        self.server: DeviceServerThread | None = None
        if transport == "tcp":
            self.server = DeviceServerThread(self.device).start()
            self.address = self.server.address
            self.connect: Callable[[str], Connection] = tcp_connect
        else:
            self.address = "in-process"
            self.connect = lambda _address: LocalConnection(self.device.connect())

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.device.close()

    def authorize(self, index: int, provider_id: str, ttl: int = 3600) -> AuthorizationBundle:
        initial = StaticKeys.generate(0x01)
        expires = int(time.time()) + ttl
        conn = self.connect(self.address)
        try:
            isd = IsdSession(conn)
            isd.select()
            isd.authenticate(gp_test_keys())
            isd.place_authorization(container_aid(index), provider_id, initial, expires)
        finally:
            conn.close()
        return AuthorizationBundle(
            f"auth-{provider_id}-{index}",
            self.device.device_id.hex().upper(),
            self.address,
            f"container-{index}",
            container_aid(index),
            initial.kvn,
            initial,
            initial.kcvs(),
            expires,
        )

    def holder(self, index: int) -> tuple[Connection, ContainerSession]:
        conn = self.connect(self.address)
        session = ContainerSession(conn, container_aid(index))
        session.select()
        return conn, session
