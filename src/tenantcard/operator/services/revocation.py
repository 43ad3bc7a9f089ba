"""Phase 3: revocation (provider, holder loss or theft, contract end), lock/unlock, operator key rotation.

Revoking deletes the provider's key set and the container's content on the device (DELETE to the ISD) without
knowing the provider's key; the container is AVAILABLE again. A revocation first reads GET STATUS, so a
container already AVAILABLE is not revoked twice (a retried or resumed revocation is a no-op on the device).
"""

from __future__ import annotations

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import (
    AuthorizationStatus,
    Container,
    ContainerState,
    ContractStatus,
    DeviceStatus,
    Job,
    JobKind,
)
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.credentials import Principal
from tenantcard.operator.services.device_ops import DeviceOps, isd_purpose
from tenantcard.operator.services.errors import Conflict, NotFound
from tenantcard.operator.services.gateway import DeviceState
from tenantcard.operator.services.jobs import Jobs

MAX_KVN = 0x7F


class Revocation:
    def __init__(self, env: Env, ops: DeviceOps, jobs: Jobs) -> None:
        self._env = env
        self._ops = ops
        self._jobs = jobs

    def _container_for(self, principal: Principal, container_id: str) -> Container:
        with self._env.db.transaction() as s:
            row = repo.container(s, container_id)
        if row is None or (principal.kind != "admin" and row.provider_id != principal.subject_id):
            raise NotFound("no such container")  # another provider's container does not exist for you
        return row

    def containers(self, provider_id: str) -> list[Container]:
        with self._env.db.transaction() as s:
            return list(repo.containers_of_provider(s, provider_id))

    def container(self, principal: Principal, container_id: str) -> Container:
        return self._container_for(principal, container_id)

    # --- one container ------------------------------------------------------------------------------------
    def revoke(self, principal: Principal, container_id: str, reason: str = "provider_request") -> Container:
        row = self._container_for(principal, container_id)
        self.revoke_on_device(row.device_id, container_id, principal.actor, reason, expect_provider=row.provider_id)
        return self._container_for(Principal("admin", ""), container_id)

    def revoke_on_device(
        self,
        device_id: str,
        container_id: str,
        actor: str,
        reason: str,
        *,
        expect_provider: str | None = None,
        expect_contract: str | None = None,
    ) -> bool:
        """Revoke one container; True if this call revoked it, False if it was already available."""
        env = self._env
        with self._ops.session(device_id) as ctx, env.db.transaction() as s:
            row = repo.container(s, container_id)
            if row is None:
                raise NotFound("no such container")
            if expect_provider is not None and row.provider_id != expect_provider:
                return False  # reassigned meanwhile
            if expect_contract is not None and row.contract_id != expect_contract:
                return False  # already revoked (and perhaps handed out again)
            info = ctx.status.get(row.index)
            revoked = False
            if info is not None and info.state != DeviceState.AVAILABLE:
                ctx.isd.revoke(row.index)
                revoked = True
            provider = row.provider_id
            if row.state != ContainerState.AVAILABLE or revoked:
                self._ops.release(s, row, "revoked")
                env.audit.append(
                    s,
                    actor,
                    "container.revoked",
                    container_id,
                    {"device": device_id, "provider": provider, "reason": reason},
                )
            return revoked

    def set_locked(self, principal: Principal, container_id: str, locked: bool) -> Container:
        env = self._env
        row = self._container_for(principal, container_id)
        with self._ops.session(row.device_id) as ctx, env.db.transaction() as s:
            row2 = repo.container(s, container_id)
            assert row2 is not None
            if principal.kind != "admin" and row2.provider_id != principal.subject_id:
                raise NotFound("no such container")
            info = ctx.status.get(row2.index)
            want_from = DeviceState.OWNED if locked else DeviceState.LOCKED
            if info is None or info.state != want_from:
                raise Conflict(f"the container is {info.state if info else 'absent'}", code="container_state")
            if locked:
                ctx.isd.lock(row2.index)
            else:
                ctx.isd.unlock(row2.index)
            row2.state = ContainerState.LOCKED if locked else ContainerState.OWNED
            row2.updated_at = env.now()
            env.audit.append(s, principal.actor, "container.locked" if locked else "container.unlocked", container_id)
            return row2

    # --- holder: loss or theft ----------------------------------------------------------------------------
    def report_lost(self, holder_id: str, device_id: str) -> Job:
        env = self._env
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            if device is None or device.holder_id != holder_id:
                raise NotFound("no such device")
            device.status = DeviceStatus.LOST
            for auth in repo.pending_consents(s, [device_id]):
                auth.status = AuthorizationStatus.REFUSED
                auth.error = "device_lost"
            items = [(device_id, c.id) for c in repo.containers_of_device(s, device_id) if c.provider_id]
            env.audit.append(s, f"holder:{holder_id}", "device.reported_lost", device_id)
            return self._jobs.create(s, JobKind.DEVICE_LOSS, device_id, items)

    # --- contract end -------------------------------------------------------------------------------------
    def end_contract(self, contract_id: str) -> Job:
        env = self._env
        with env.db.transaction() as s:
            contract = repo.contract(s, contract_id)
            if contract is None:
                raise NotFound("no such contract")
            if contract.status == ContractStatus.ENDED:
                raise Conflict("the contract has already ended", code="contract_ended")
            contract.status = ContractStatus.ENDED
            contract.ended_at = env.now()
            items = [
                (c.device_id, c.id)
                for c in repo.containers_of_provider(s, contract.provider_id, contract_id=contract_id)
            ]
            env.audit.append(s, "admin", "contract.ended", contract_id, {"containers": len(items)})
            return self._jobs.create(s, JobKind.CONTRACT_END, contract_id, items)

    # --- operator key rotation ----------------------------------------------------------------------------
    def rotate_device(self, device_id: str, actor: str = "admin") -> int:
        """Replace the operator key set of one device; returns the new KVN."""
        env = self._env
        with self._ops.session(device_id, reconcile=False) as ctx:
            with env.db.transaction() as s:
                device = repo.device(s, device_id)
                assert device is not None
                new_kvn = device.isd_kvn % MAX_KVN + 1
                new = StaticKeys.generate(new_kvn, 16, random=env.random)
                device.next_kvn = new_kvn
                device.next_keys_wrapped = env.custody.wrap_keys(isd_purpose(device_id, new_kvn), new)
            ctx.isd.rotate_keys(new)
            with env.db.transaction() as s:
                device = repo.device(s, device_id)
                assert device is not None
                device.isd_kvn, device.isd_keys_wrapped = new_kvn, device.next_keys_wrapped or b""
                device.next_kvn, device.next_keys_wrapped = None, None
                env.audit.append(s, actor, "device.keys_rotated", device_id, {"kvn": new_kvn})
        return new_kvn

    def rotate_fleet(self) -> Job:
        env = self._env
        with env.db.transaction() as s:
            items = [(d, None) for d in repo.device_ids(s)]
            env.audit.append(s, "admin", "fleet.rotation_started", "fleet", {"devices": len(items)})
            return self._jobs.create(s, JobKind.FLEET_ROTATION, "fleet", items)
