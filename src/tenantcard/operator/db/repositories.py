"""Queries the services share. Each takes the caller's session: the service owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tenantcard.operator.db.models import (
    Authorization,
    AuthorizationStatus,
    Container,
    Contract,
    Device,
    DevicePointer,
    Holder,
    Job,
    JobItem,
    Provider,
)


def device(s: Session, device_id: str, *, for_update: bool = False) -> Device | None:
    query = select(Device).where(Device.id == device_id)
    if for_update:
        query = query.with_for_update()
    return s.execute(query).scalar_one_or_none()


def device_by_serial(s: Session, serial: str) -> Device | None:
    return s.execute(select(Device).where(Device.serial == serial)).scalar_one_or_none()


def device_by_pointer(s: Session, pointer: str) -> Device | None:
    row = s.get(DevicePointer, pointer)
    return None if row is None else s.get(Device, row.device_id)


def devices(s: Session, *, after: str = "", limit: int = 100) -> Sequence[Device]:
    return s.execute(select(Device).where(Device.id > after).order_by(Device.id).limit(limit)).scalars().all()


def device_ids(s: Session) -> Sequence[str]:
    return s.execute(select(Device.id).order_by(Device.id)).scalars().all()


def count_devices(s: Session) -> int:
    return int(s.execute(select(func.count()).select_from(Device)).scalar_one())


def holder_devices(s: Session, holder_id: str) -> Sequence[Device]:
    return s.execute(select(Device).where(Device.holder_id == holder_id).order_by(Device.id)).scalars().all()


def provider(s: Session, provider_id: str) -> Provider | None:
    return s.get(Provider, provider_id)


def provider_by_name(s: Session, name: str) -> Provider | None:
    return s.execute(select(Provider).where(Provider.name == name)).scalar_one_or_none()


def providers(s: Session) -> Sequence[Provider]:
    return s.execute(select(Provider).order_by(Provider.created_at, Provider.id)).scalars().all()


def holder(s: Session, holder_id: str) -> Holder | None:
    return s.get(Holder, holder_id)


def contract(s: Session, contract_id: str) -> Contract | None:
    return s.get(Contract, contract_id)


def contracts_of(s: Session, provider_id: str) -> Sequence[Contract]:
    return (
        s.execute(select(Contract).where(Contract.provider_id == provider_id).order_by(Contract.created_at))
        .scalars()
        .all()
    )


def container(s: Session, container_id: str) -> Container | None:
    return s.get(Container, container_id)


def container_at(s: Session, device_id: str, index: int) -> Container | None:
    return s.execute(
        select(Container).where(Container.device_id == device_id, Container.index == index)
    ).scalar_one_or_none()


def containers_of_device(s: Session, device_id: str) -> Sequence[Container]:
    return (
        s.execute(select(Container).where(Container.device_id == device_id).order_by(Container.index)).scalars().all()
    )


def containers_of_provider(s: Session, provider_id: str, *, contract_id: str | None = None) -> Sequence[Container]:
    query = select(Container).where(Container.provider_id == provider_id)
    if contract_id is not None:
        query = query.where(Container.contract_id == contract_id)
    return s.execute(query.order_by(Container.device_id, Container.index)).scalars().all()


def authorization(s: Session, authorization_id: str) -> Authorization | None:
    return s.get(Authorization, authorization_id)


def authorization_by_key(s: Session, provider_id: str, key: str) -> Authorization | None:
    return s.execute(
        select(Authorization).where(Authorization.provider_id == provider_id, Authorization.idempotency_key == key)
    ).scalar_one_or_none()


def authorizations_of_provider(s: Session, provider_id: str, *, limit: int = 100) -> Sequence[Authorization]:
    return (
        s.execute(
            select(Authorization)
            .where(Authorization.provider_id == provider_id)
            .order_by(Authorization.created_at.desc(), Authorization.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )


def pending_consents(s: Session, device_ids: Sequence[str]) -> Sequence[Authorization]:
    if not device_ids:
        return []
    return (
        s.execute(
            select(Authorization)
            .where(
                Authorization.device_id.in_(device_ids),
                Authorization.status == AuthorizationStatus.PENDING_CONSENT,
            )
            .order_by(Authorization.created_at)
        )
        .scalars()
        .all()
    )


def expired_authorizations(s: Session, now: int, *, limit: int = 100) -> Sequence[Authorization]:
    return (
        s.execute(
            select(Authorization)
            .where(
                Authorization.status.in_(
                    [AuthorizationStatus.PLACED, AuthorizationStatus.APPROVED, AuthorizationStatus.PENDING_CONSENT]
                ),
                Authorization.expires_at.is_not(None),
                Authorization.expires_at < now,
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )


def job(s: Session, job_id: str, *, for_update: bool = False) -> Job | None:
    return s.get(Job, job_id, with_for_update=for_update)


def running_jobs(s: Session) -> Sequence[Job]:
    return s.execute(select(Job).where(Job.status == "running").order_by(Job.created_at)).scalars().all()


def jobs(s: Session, *, limit: int = 100) -> Sequence[Job]:
    return s.execute(select(Job).order_by(Job.created_at.desc()).limit(limit)).scalars().all()


def job_items(s: Session, job_id: str, *, status: str | None = None) -> Sequence[JobItem]:
    query = select(JobItem).where(JobItem.job_id == job_id)
    if status is not None:
        query = query.where(JobItem.status == status)
    return s.execute(query.order_by(JobItem.id)).scalars().all()
