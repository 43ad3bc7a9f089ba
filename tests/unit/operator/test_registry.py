"""Providers, credentials, contracts, holders, consent without a device round trip; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tenantcard.operator.db.models import AuthorizationStatus, ContractOption, Credential, CredentialKind, Secret
from tenantcard.operator.services.credentials import FailureLimiter
from tenantcard.operator.services.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.manufacturing import ContainerPlan
from tenantcard.operator.services.placement import DeviceRef
from tests.unit.operator.conftest import Clock


def test_provider_credential_is_shown_once_and_stored_hashed(services: OperatorServices) -> None:
    provider, credential = services.registry.register_provider("Acme Bank")
    assert credential.startswith("tcp_")
    principal = services.credentials.authenticate(credential)
    assert (principal.kind, principal.subject_id) == ("provider", provider.id)
    secret = credential.split(".", 1)[1]
    with services.env.db.transaction() as s:
        rows = s.execute(select(Credential)).scalars().all()
        stored = b"".join(r.key_hash for r in rows) + b"".join(x.wrapped for x in s.execute(select(Secret)).scalars())
    assert secret.encode() not in stored
    with pytest.raises(Conflict) as dup:
        services.registry.register_provider("Acme Bank")
    assert dup.value.code == "provider_exists"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # wrong secret
        lambda c: "tch_" + c[4:],  # right secret, wrong kind
        lambda c: c.split(".")[0],  # no secret
        lambda c: "",
        lambda c: "x" * 500,
        lambda c: "tcp_ffffffffffffffff." + c.split(".")[1],  # unknown key id
    ],
)
def test_bad_credentials_are_refused(services: OperatorServices, mangle) -> None:
    _, credential = services.registry.register_provider("Acme")
    with pytest.raises(Unauthenticated) as err:
        services.credentials.authenticate(mangle(credential))
    assert credential.split(".")[1] not in str(err.value)


def test_rotated_credential_replaces_the_old_one(services: OperatorServices) -> None:
    provider, old = services.registry.register_provider("Acme")
    _, new = services.registry.new_provider_credential(provider.id)
    assert services.credentials.authenticate(new).subject_id == provider.id
    with pytest.raises(Unauthenticated):
        services.credentials.authenticate(old)


def test_failure_limiter_blocks_a_source_then_forgives() -> None:
    clock = Clock(0.0)
    limiter = FailureLimiter(3, 60.0, clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failure("10.0.0.1")
    with pytest.raises(RateLimited) as err:
        limiter.check("10.0.0.1")
    assert 0 < err.value.retry_after <= 60
    limiter.check("10.0.0.2")  # another source is not affected
    clock.now = 61.0
    limiter.check("10.0.0.1")


def test_contract_rules(services: OperatorServices) -> None:
    p, _ = services.registry.register_provider("Acme")
    with pytest.raises(InvalidRequest):
        services.registry.create_contract(p.id, ContractOption.FIXED_INDEX, 1024)
    with pytest.raises(InvalidRequest):
        services.registry.create_contract(p.id, ContractOption.PER_REQUEST, 1024, container_index=3)
    with pytest.raises(InvalidRequest):
        services.registry.create_contract(p.id, ContractOption.PER_REQUEST, 1024, reserved=2048)
    with pytest.raises(NotFound):
        services.registry.create_contract("prv_nobody", ContractOption.PER_REQUEST, 1024)
    b = services.registry.create_contract(p.id, ContractOption.FIXED_INDEX, 1024, container_index=7)
    assert b.container_index == 7 and b.status == "active"
    q, _ = services.registry.register_provider("Other")
    with pytest.raises(Conflict) as taken:
        services.registry.create_contract(q.id, ContractOption.FIXED_INDEX, 1024, container_index=7)
    assert taken.value.code == "index_taken"
    job = services.revocation.end_contract(b.id)  # nothing placed yet: an empty job, done at once
    assert (job.status, job.total) == ("done", 0)
    services.registry.create_contract(q.id, ContractOption.FIXED_INDEX, 1024, container_index=7)
    with pytest.raises(NotFound):
        services.registry.contract(b.id, provider_id=q.id)  # another provider's contract does not exist for q


def test_consent_refused_and_wrong_codes(services: OperatorServices) -> None:
    reg = services.registry
    made = services.manufacturing.manufacture([ContainerPlan(4096)], serial="SER-1")
    holder, credential = reg.create_holder("Alice")
    assert services.credentials.authenticate(credential).kind == CredentialKind.HOLDER.value
    p, _ = reg.register_provider("Acme")
    c = reg.create_contract(p.id, ContractOption.PER_REQUEST, 1024, consent_required=True)
    with pytest.raises(Conflict) as no_holder:
        services.placement.request(p.id, c.id, DeviceRef(serial="SER-1"), "k0")
    assert no_holder.value.code == "no_holder"
    reg.link_device(holder.id, made.device.id)

    first = services.placement.request(p.id, c.id, DeviceRef(serial="SER-1"), "k1")
    assert first.authorization.status == AuthorizationStatus.PENDING_CONSENT and first.bundle is None
    code = first.consent_code
    assert code is not None and len(code) == 8
    again = services.placement.request(p.id, c.id, DeviceRef(serial="SER-1"), "k1")  # idempotent replay
    assert again.authorization.id == first.authorization.id and again.consent_code is None
    with pytest.raises(Conflict) as mismatch:
        services.placement.request(p.id, c.id, DeviceRef(device_id=made.device.id), "k1")
    assert mismatch.value.code == "idempotency_mismatch"

    assert [a.id for a in services.consent.pending(holder.id)] == [first.authorization.id]
    other, _ = reg.create_holder("Mallory")
    with pytest.raises(NotFound):
        services.consent.decide(other.id, first.authorization.id, code, True)
    wrong = "0" * 8 if code != "0" * 8 else "1" * 8
    with pytest.raises(Forbidden):
        services.consent.decide(holder.id, first.authorization.id, wrong, True)
    refused = services.consent.decide(holder.id, first.authorization.id, code, False)
    assert refused.authorization.status == AuthorizationStatus.REFUSED
    with pytest.raises(Conflict):
        services.consent.decide(holder.id, first.authorization.id, code, True)  # the code works once

    second = services.placement.request(p.id, c.id, DeviceRef(serial="SER-1"), "k2")
    for _ in range(services.env.settings.consent_max_attempts):
        with pytest.raises(Forbidden):
            services.consent.decide(holder.id, second.authorization.id, wrong, True)
    assert services.placement.get(p.id, second.authorization.id).authorization.status == AuthorizationStatus.REFUSED

    q, _ = reg.register_provider("Other")
    with pytest.raises(NotFound):
        services.placement.get(q.id, second.authorization.id)  # isolation: not visible to another provider


def test_device_references(services: OperatorServices) -> None:
    made = services.manufacturing.manufacture([ContainerPlan(4096)], serial="SER-2")
    services.registry.add_pointer(made.device.id, "idp:pairwise:abc")
    p, _ = services.registry.register_provider("Acme")
    c = services.registry.create_contract(p.id, ContractOption.PER_REQUEST, 1024, consent_required=True)
    h, _ = services.registry.create_holder("Bob")
    services.registry.link_device(h.id, made.device.id)
    for i, ref in enumerate(
        [
            DeviceRef(serial="SER-2"),
            DeviceRef(device_id=made.device.id.upper()),
            DeviceRef(idp_pointer="idp:pairwise:abc"),
        ]
    ):
        out = services.placement.request(p.id, c.id, ref, f"ref-{i}")
        assert out.authorization.device_id == made.device.id
    with pytest.raises(NotFound):
        services.placement.request(p.id, c.id, DeviceRef(idp_pointer="unknown"), "ref-x")
    with pytest.raises(InvalidRequest):
        services.placement.request(p.id, c.id, DeviceRef(serial="SER-2", idp_pointer="x"), "ref-y")
    other = services.manufacturing.manufacture([], serial="SER-3")
    with pytest.raises(Conflict):
        services.registry.add_pointer(other.device.id, "idp:pairwise:abc")
    with pytest.raises(Conflict):
        services.manufacturing.manufacture([], serial="SER-3")
    assert services.registry.device(made.device.id).certificate_pem.startswith("-----BEGIN CERTIFICATE-----")


def test_unanswered_consent_expires(services: OperatorServices, clock: Clock) -> None:
    made = services.manufacturing.manufacture([ContainerPlan(4096)], serial="SER-EXP")
    holder, _ = services.registry.create_holder("Dora")
    services.registry.link_device(holder.id, made.device.id)
    p, _ = services.registry.register_provider("Acme")
    c = services.registry.create_contract(p.id, ContractOption.PER_REQUEST, 1024, consent_required=True)
    out = services.placement.request(p.id, c.id, DeviceRef(serial="SER-EXP"), "x1")
    assert out.consent_code is not None
    assert services.placement.sweep_expired() == 0
    clock.now += services.env.settings.authorization_ttl_seconds + 1
    assert services.placement.sweep_expired() == 1
    assert services.placement.get(p.id, out.authorization.id).authorization.status == AuthorizationStatus.EXPIRED
    with pytest.raises(Conflict) as late:
        services.consent.decide(holder.id, out.authorization.id, out.consent_code, True)
    assert late.value.code == "not_pending"
