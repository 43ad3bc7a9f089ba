"""JSON bodies of the operator API (request and response models; the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantcard.crypto.identity import DEVICE_ID_HEX_PATTERN

Id = Field(min_length=1, max_length=64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Row(BaseModel):
    """An answer read from the attributes of a stored row (``Row.model_validate(row)``)."""

    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- admin: providers, contracts, holders --------------------------------------------------------------------
class ProviderCreate(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


class ProviderOut(Row):
    id: str
    name: str
    created_at: int


class IssuedCredentialOut(BaseModel):
    id: str
    name: str
    credential: str = Field(description="Bearer credential; shown this once, stored only hashed")

    @classmethod
    def of(cls, owner: Any, credential: str) -> IssuedCredentialOut:
        """The answer that hands a new credential to a provider, holder or identity provider (row ``owner``)."""
        return cls(id=owner.id, name=owner.name, credential=credential)


class ContractCreate(Strict):
    provider_id: str = Field(min_length=1, max_length=64)
    option: Literal["A", "B"] = Field(description="A: a container per request; B: a fixed container index")
    container_index: int | None = Field(default=None, ge=0, le=0xFFFF)
    quota: int = Field(ge=1, le=1 << 30, description="Memory quota of the container, bytes")
    reserved: int = Field(default=0, ge=0, le=1 << 30, description="Memory reserved for the container, bytes")
    consent_required: bool = False

    @model_validator(mode="after")
    def _index_matches_option(self) -> ContractCreate:
        if self.option == "B" and self.container_index is None:
            raise ValueError("option B needs container_index")
        if self.option == "A" and self.container_index is not None:
            raise ValueError("option A takes no container_index")
        if self.reserved > self.quota:
            raise ValueError("reserved exceeds quota")
        return self


class ContractOut(Row):
    id: str
    provider_id: str
    option: str
    container_index: int | None
    quota: int
    reserved: int
    consent_required: bool
    status: str
    created_at: int
    ended_at: int | None


class HolderCreate(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


class HolderLink(Strict):
    device_id: str = Field(min_length=20, max_length=20, pattern=DEVICE_ID_HEX_PATTERN)


# --- devices -------------------------------------------------------------------------------------------------
class ContainerSpecIn(Strict):
    """One initial container; containers get indexes 0, 1, 2, ... in order."""

    quota: int = Field(ge=1, le=1 << 30)
    reserved: int = Field(default=0, ge=0, le=1 << 30)


class ManufactureIn(Strict):
    serial: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    containers: list[ContainerSpecIn] = Field(default_factory=list, max_length=64)


class DeviceOut(Row):
    id: str
    serial: str
    status: str
    address: str | None
    address_verified_at: int | None
    isd_kvn: int
    holder_id: str | None
    created_at: int


class ManufacturedOut(DeviceOut):
    certificate_pem: str
    store_path: str
    vault_uri: str


class ContainerOut(BaseModel):
    id: str
    device_id: str
    index: int
    aid: str
    state: str
    provider_id: str | None
    contract_id: str | None
    authorization_id: str | None


class DeviceDetailOut(DeviceOut):
    containers: list[ContainerOut]


class PointerIn(Strict):
    pointer: str = Field(min_length=1, max_length=200)


# --- identity providers ----------------------------------------------------------------------------------------
class IdpCreate(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


class IdpOut(Row):
    id: str
    name: str
    created_at: int


class ResolveIn(Strict):
    handle: str = Field(min_length=1, max_length=200, description="A device id (20 hex digits) or a pointer")


class ResolvedDeviceOut(BaseModel):
    device_id: str
    address: str | None = Field(description="The address of the device's last verified check-in, if any")
    status: Literal["active", "lost", "retired"]


class IdpPointerIn(Strict):
    pointer: str = Field(min_length=1, max_length=200)
    challenge: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The 32-byte challenge sent to the device at login (hex): 8-byte big-endian UNIX time, 24 random",
    )
    signature: str = Field(
        pattern=r"^(?:[0-9a-fA-F]{2}){8,80}$", description="The device's INTERNAL AUTHENTICATE answer (hex)"
    )


class CheckInIn(Strict):
    address: str = Field(min_length=3, max_length=255, description="HOST:PORT or tcp://HOST:PORT")


class RotationOut(BaseModel):
    device_id: str
    kvn: int


# --- authorizations ------------------------------------------------------------------------------------------
class DeviceRefIn(Strict):
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    device_id: str | None = Field(default=None, min_length=20, max_length=20, pattern=DEVICE_ID_HEX_PATTERN)
    idp_pointer: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _exactly_one(self) -> DeviceRefIn:
        if sum(v is not None for v in (self.serial, self.device_id, self.idp_pointer)) != 1:
            raise ValueError("name the device by exactly one of serial, device_id, idp_pointer")
        return self


class AuthorizationRequest(Strict):
    contract_id: str = Field(min_length=1, max_length=64)
    device: DeviceRefIn
    idempotency_key: str = Field(min_length=1, max_length=200)


class KeySetOut(BaseModel):
    enc: str
    mac: str
    dek: str


class KcvsOut(BaseModel):
    enc: str
    mac: str
    dek: str


class BundleOut(BaseModel):
    device_id: str
    device_address: str
    container_id: str
    container_aid: str
    kvn: int
    keys: KeySetOut | None = Field(description="Initial key set (hex); null once ownership was reported")
    kcvs: KcvsOut
    expires_at: int = Field(description="UNIX seconds after which the authorization is revoked if not taken")


class AuthorizationOut(BaseModel):
    id: str
    status: str
    contract_id: str
    device_id: str
    created_at: int
    expires_at: int | None
    error: str | None
    consent_code: str | None = Field(
        default=None, description="One-time code to show the holder; only in the answer that created the request"
    )
    bundle: BundleOut | None = None


class AuthorizationSummary(Row):
    id: str
    status: str
    contract_id: str
    device_id: str
    container_id: str | None
    created_at: int
    expires_at: int | None


# --- holders -------------------------------------------------------------------------------------------------
class ConsentIn(Strict):
    code: str = Field(min_length=1, max_length=16)


class HolderContainerOut(BaseModel):
    index: int
    aid: str
    state: str
    provider_id: str | None
    provider_name: str | None


class HolderDeviceOut(BaseModel):
    id: str
    serial: str
    status: str
    containers: list[HolderContainerOut]


class ConsentRequestOut(BaseModel):
    id: str
    device_id: str
    provider_id: str
    provider_name: str | None
    contract_id: str
    created_at: int
    expires_at: int | None


# --- jobs and audit ------------------------------------------------------------------------------------------
class JobOut(Row):
    id: str
    kind: str
    subject: str
    status: str
    total: int
    done: int
    failed: int
    created_at: int
    updated_at: int


class AuditEntryOut(BaseModel):
    seq: int
    at: int
    actor: str
    action: str
    subject: str
    details: dict[str, object]
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str


class MeOut(BaseModel):
    kind: str
    id: str


class CaOut(BaseModel):
    certificate_pem: str
