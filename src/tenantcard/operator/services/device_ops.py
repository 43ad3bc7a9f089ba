"""One operation on one device: take its lock, open SCP03 to its ISD with the operator keys, reconcile.

Rotation leaves a window in which the device may already hold the new operator key set while the registry
still names the old one (crash between PUT KEY and the commit). The new set is written to ``next_keys``
*before* PUT KEY, so opening falls back to it and promotes it; no key set is ever lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import Authorization, AuthorizationStatus, Container, ContainerState, Device
from tenantcard.operator.services.core import Env, new_id
from tenantcard.operator.services.errors import Conflict, DeviceUnavailable, NotFound
from tenantcard.operator.services.gateway import ContainerInfo, DeviceRefused, DeviceState, GatewayError, IsdChannel

_STATE = {
    DeviceState.AVAILABLE: ContainerState.AVAILABLE,
    DeviceState.AUTHORIZED: ContainerState.AUTHORIZED,
    DeviceState.OWNED: ContainerState.OWNED,
    DeviceState.LOCKED: ContainerState.LOCKED,
}


def isd_purpose(device_id: str, kvn: int) -> str:
    return f"isd:{device_id}:{kvn}"


@dataclass
class DeviceContext:
    device: Device
    isd: IsdChannel
    status: dict[int, ContainerInfo]


class DeviceOps:
    def __init__(self, env: Env) -> None:
        self._env = env

    def operator_keys(self, device: Device) -> tuple[StaticKeys, StaticKeys | None]:
        custody = self._env.custody
        current = custody.unwrap_keys(isd_purpose(device.id, device.isd_kvn), device.isd_keys_wrapped)
        nxt = None
        if device.next_keys_wrapped is not None and device.next_kvn is not None:
            nxt = custody.unwrap_keys(isd_purpose(device.id, device.next_kvn), device.next_keys_wrapped)
        return current, nxt

    @contextmanager
    def session(self, device_id: str, *, reconcile: bool = True) -> Iterator[DeviceContext]:
        """Lock the device, open its ISD, read GET STATUS and reconcile the registry with it.

        Raises NotFound, DeviceBusy, DeviceUnavailable; DeviceRefused from the body becomes Conflict.
        """
        env = self._env
        with env.locks.hold(device_id):  # NotFound for a device that does not exist
            with env.db.transaction() as s:
                device = repo.device(s, device_id)
                if device is None:
                    raise NotFound("no such device")
            if not device.address:
                raise DeviceUnavailable("the device has not checked in an address")
            current, nxt = self.operator_keys(device)
            try:
                with ExitStack() as stack:
                    isd = self._enter(stack, device, current, nxt)
                    status = {c.index: c for c in isd.containers()}
                    if reconcile:
                        self._reconcile(device.id, isd, status)
                    yield DeviceContext(device, isd, status)
            except GatewayError as exc:
                raise DeviceUnavailable("the device is unreachable or refused the operator's channel") from exc
            except DeviceRefused as exc:
                raise Conflict(str(exc), code="device_refused") from exc

    def _enter(self, stack: ExitStack, device: Device, current: StaticKeys, nxt: StaticKeys | None) -> IsdChannel:
        gateway = self._env.gateway
        address = device.address or ""
        try:
            return stack.enter_context(gateway.open_isd(address, current))
        except GatewayError:
            if nxt is None:
                raise
        isd = stack.enter_context(gateway.open_isd(address, nxt))
        self.promote_next(device.id)
        return isd

    def promote_next(self, device_id: str) -> None:
        env = self._env
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            if device is None or device.next_keys_wrapped is None or device.next_kvn is None:
                return
            device.isd_keys_wrapped, device.isd_kvn = device.next_keys_wrapped, device.next_kvn
            device.next_keys_wrapped, device.next_kvn = None, None
            env.audit.append(s, "operator", "device.keys_rotated", device_id, {"kvn": device.isd_kvn})

    def _reconcile(self, device_id: str, isd: IsdChannel, status: dict[int, ContainerInfo]) -> None:
        """Make the registry agree with the device's GET STATUS.

        An AUTHORIZED container the registry does not know as placed (an authorization placed but never
        committed, e.g. the operator died in between) is revoked: nobody holds its initial keys. A container the
        device shows AVAILABLE but the registry does not is recorded as revoked (reason ``reconciled``).
        """
        env = self._env
        with env.db.transaction() as s:
            rows = {row.index: row for row in repo.containers_of_device(s, device_id)}
            for index, info in list(status.items()):
                row = rows.get(index)
                if info.state == DeviceState.AUTHORIZED and (row is None or row.state != ContainerState.AUTHORIZED):
                    isd.revoke(index)
                    status[index] = ContainerInfo(index, DeviceState.AVAILABLE, None)
                    env.audit.append(s, "operator", "container.orphan_revoked", f"{device_id}/{index}")
                    info = status[index]
                if row is None:
                    s.add(
                        Container(
                            id=new_id("cnt", env.random),
                            device_id=device_id,
                            index=index,
                            state=_STATE.get(info.state, ContainerState.AVAILABLE),
                            updated_at=env.now(),
                        )
                    )
                    continue
                new_state = _STATE.get(info.state)
                if new_state is None or new_state == row.state:
                    continue
                if new_state == ContainerState.AVAILABLE:
                    # The device revoked it but the registry never recorded it (the reply was lost with a killed
                    # device or operator): record the revocation now, once, like revoke_on_device would have.
                    env.audit.append(
                        s,
                        "operator",
                        "container.revoked",
                        row.id,
                        {"device": device_id, "provider": row.provider_id, "reason": "reconciled"},
                    )
                    self.release(s, row, "revoked")
                elif row.state == ContainerState.AUTHORIZED and new_state in (
                    ContainerState.OWNED,
                    ContainerState.LOCKED,
                ):
                    self.mark_owned(s, row)
                    row.state = new_state
                else:
                    row.state = new_state
                row.updated_at = env.now()

    def release(self, s: Session, row: Container, outcome: str) -> None:
        """The container is AVAILABLE again: forget its provider and close its authorization."""
        if row.authorization_id:
            auth = s.get(Authorization, row.authorization_id)
            if auth is not None and auth.status in (AuthorizationStatus.PLACED, AuthorizationStatus.OWNED):
                auth.status = AuthorizationStatus.EXPIRED if outcome == "expired" else AuthorizationStatus.REVOKED
                auth.initial_keys_wrapped = None
                auth.updated_at = self._env.now()
        row.state = ContainerState.AVAILABLE
        row.provider_id = None
        row.contract_id = None
        row.authorization_id = None
        row.updated_at = self._env.now()

    def mark_owned(self, s: Session, row: Container) -> None:
        """The provider has taken the container over: erase the initial keys."""
        if row.authorization_id:
            auth = s.get(Authorization, row.authorization_id)
            if auth is not None and auth.status == AuthorizationStatus.PLACED:
                auth.status = AuthorizationStatus.OWNED
                auth.initial_keys_wrapped = None
                auth.updated_at = self._env.now()
                self._env.audit.append(s, "operator", "authorization.owned", auth.id, {"container": row.id})
        row.state = ContainerState.OWNED
        row.updated_at = self._env.now()
