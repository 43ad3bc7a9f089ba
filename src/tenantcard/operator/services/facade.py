"""All operator services wired together over one ``Env``; the API, the CLI and the job runner use this."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenantcard.operator.db.models import JobKind
from tenantcard.operator.services.consent import Consent
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.credentials import Credentials
from tenantcard.operator.services.device_ops import DeviceOps
from tenantcard.operator.services.idps import IdentityProviders
from tenantcard.operator.services.jobs import JobRunner, Jobs, WorkItem
from tenantcard.operator.services.manufacturing import Manufacturing
from tenantcard.operator.services.placement import Placement
from tenantcard.operator.services.registry import Registry
from tenantcard.operator.services.revocation import Revocation

_REASON = {JobKind.CONTRACT_END: "contract_end", JobKind.DEVICE_LOSS: "device_loss"}


@dataclass
class OperatorServices:
    env: Env
    credentials: Credentials = field(init=False)
    ops: DeviceOps = field(init=False)
    manufacturing: Manufacturing = field(init=False)
    registry: Registry = field(init=False)
    idps: IdentityProviders = field(init=False)
    placement: Placement = field(init=False)
    consent: Consent = field(init=False)
    jobs: Jobs = field(init=False)
    revocation: Revocation = field(init=False)

    def __post_init__(self) -> None:
        env = self.env
        self.credentials = Credentials(env)
        self.ops = DeviceOps(env)
        self.manufacturing = Manufacturing(env)
        self.registry = Registry(env, self.credentials, self.manufacturing.ca_certificate)
        self.idps = IdentityProviders(env, self.credentials, self.manufacturing.ca_certificate)
        self.placement = Placement(env, self.ops)
        self.consent = Consent(env, self.placement)
        self.jobs = Jobs(env)
        self.revocation = Revocation(env, self.ops, self.jobs)

    def handle_item(self, work: WorkItem) -> None:
        """One job item: revoke one container, or rotate one device's operator keys."""
        if work.kind == JobKind.FLEET_ROTATION:
            self.revocation.rotate_device(work.device_id, actor="operator")
            return
        if work.container_id is None:
            return
        contract = work.subject if work.kind == JobKind.CONTRACT_END else None
        self.revocation.revoke_on_device(
            work.device_id, work.container_id, "operator", _REASON[work.kind], expect_contract=contract
        )

    def runner(self) -> JobRunner:
        return JobRunner(self.env, self.jobs, self.handle_item, self.placement.sweep_expired)
