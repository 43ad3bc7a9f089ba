"""The operator's tables (SQLAlchemy 2 declarative). Times are integer UNIX seconds (portable, tz-free).

Wrapped columns (``*_wrapped``) hold AES-GCM blobs under the custody master key; nothing secret is stored
in clear.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    LOST = "lost"


class ContainerState(StrEnum):
    """Operator's view of a container, reconciled against the device's GET STATUS."""

    AVAILABLE = "available"
    AUTHORIZED = "authorized"
    OWNED = "owned"
    LOCKED = "locked"


class ContractOption(StrEnum):
    PER_REQUEST = "A"  # a container assigned per request
    FIXED_INDEX = "B"  # the same container index on every device


class ContractStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class AuthorizationStatus(StrEnum):
    PENDING_CONSENT = "pending_consent"
    APPROVED = "approved"  # consent given (or not needed), not yet placed on the device
    PLACED = "placed"
    OWNED = "owned"
    REFUSED = "refused"
    EXPIRED = "expired"
    REVOKED = "revoked"
    FAILED = "failed"


class CredentialKind(StrEnum):
    PROVIDER = "provider"
    HOLDER = "holder"
    IDP = "idp"


class JobKind(StrEnum):
    CONTRACT_END = "contract_end"
    DEVICE_LOSS = "device_loss"
    FLEET_ROTATION = "fleet_rotation"


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ItemStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Holder(Base):
    __tablename__ = "holders"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)  # 10 bytes, hex
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=DeviceStatus.ACTIVE)
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    address_verified_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    isd_kvn: Mapped[int] = mapped_column(Integer)
    isd_keys_wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    next_kvn: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_keys_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    holder_id: Mapped[str | None] = mapped_column(ForeignKey("holders.id"), nullable=True, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    lock_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lock_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DevicePointer(Base):
    """An opaque handle (e.g. handed out by the identity provider) that names a device. ``idp_id`` is the
    identity provider that registered it (None: the operator's staff)."""

    __tablename__ = "device_pointers"
    pointer: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    idp_id: Mapped[str | None] = mapped_column(ForeignKey("identity_providers.id"), nullable=True, index=True)


class IdentityProvider(Base):
    """An identity provider the operator lets resolve device handles and register pointers."""

    __tablename__ = "identity_providers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Provider(Base):
    __tablename__ = "providers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Credential(Base):
    __tablename__ = "credentials"
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Contract(Base):
    __tablename__ = "contracts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    option: Mapped[str] = mapped_column(String(1))
    container_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    consent_required: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default=ContractStatus.ACTIVE)
    created_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Container(Base):
    __tablename__ = "containers"
    __table_args__ = (UniqueConstraint("device_id", "index", name="uq_container_device_index"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=ContainerState.AVAILABLE)
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"), nullable=True, index=True)
    contract_id: Mapped[str | None] = mapped_column(ForeignKey("contracts.id"), nullable=True, index=True)
    authorization_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    quota: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Authorization(Base):
    __tablename__ = "authorizations"
    __table_args__ = (UniqueConstraint("provider_id", "idempotency_key", name="uq_authorization_idempotency"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    container_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kvn: Mapped[int | None] = mapped_column(Integer, nullable=True)
    initial_keys_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kcvs: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    consent_code_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    consent_attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class JobItem(Base):
    __tablename__ = "job_items"
    __table_args__ = (Index("ix_job_items_job_status", "job_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    device_id: Mapped[str] = mapped_column(String(20))
    container_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last sequence number and hash. Updating it serializes appends."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Secret(Base):
    """A wrapped secret of the operator (e.g. the CA key) with its public counterpart."""

    __tablename__ = "secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    public: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
