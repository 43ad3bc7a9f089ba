"""REST routes: parse, authenticate, call one service, shape the answer. No logic of their own."""

# No "from __future__ import annotations": FastAPI must see the dependency aliases built in build_router.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from tenantcard.operator.api import schemas as S
from tenantcard.operator.api.auth import Authenticator
from tenantcard.operator.api.errors import COMMON_RESPONSES
from tenantcard.operator.db.models import Container, ContractOption
from tenantcard.operator.services.credentials import Principal
from tenantcard.operator.services.errors import Conflict, DeviceUnavailable
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.idps import DeviceProof
from tenantcard.operator.services.manufacturing import ContainerPlan
from tenantcard.operator.services.placement import DeviceRef, Outcome
from tenantcard.wire.gp import container_aid

PathId = Annotated[str, Path(min_length=1, max_length=64)]


def container_out(c: Container) -> S.ContainerOut:
    return S.ContainerOut(
        id=c.id,
        device_id=c.device_id,
        index=c.index,
        aid=container_aid(c.index).hex().upper(),
        state=c.state,
        provider_id=c.provider_id,
        contract_id=c.contract_id,
        authorization_id=c.authorization_id,
    )


def authorization_out(o: Outcome) -> S.AuthorizationOut:
    a = o.authorization
    bundle = None
    if o.bundle is not None:
        b = o.bundle
        keys = None if b.keys is None else S.KeySetOut(enc=b.keys.enc.hex(), mac=b.keys.mac.hex(), dek=b.keys.dek.hex())
        bundle = S.BundleOut(
            device_id=b.device_id,
            device_address=b.device_address,
            container_id=b.container_id,
            container_aid=b.container_aid,
            kvn=b.kvn,
            keys=keys,
            kcvs=S.KcvsOut(enc=b.kcvs[0], mac=b.kcvs[1], dek=b.kcvs[2]),
            expires_at=b.expires_at,
        )
    return S.AuthorizationOut(
        id=a.id,
        status=a.status,
        contract_id=a.contract_id,
        device_id=a.device_id,
        created_at=a.created_at,
        expires_at=a.expires_at,
        error=a.error,
        consent_code=o.consent_code,
        bundle=bundle,
    )


def build_router(svc: OperatorServices, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)
    Admin = Annotated[Principal, Depends(auth.require("admin"))]
    ProviderP = Annotated[Principal, Depends(auth.require("provider"))]
    ProviderOrAdmin = Annotated[Principal, Depends(auth.require("provider", "admin"))]
    HolderP = Annotated[Principal, Depends(auth.require("holder"))]
    IdpP = Annotated[Principal, Depends(auth.require("idp"))]
    AnyP = Annotated[Principal, Depends(auth.require("provider", "holder", "idp", "admin"))]

    # --- anyone ------------------------------------------------------------------------------------------
    @router.get("/ca", tags=["public"], summary="The operator CA certificate (PEM)")
    def get_ca() -> S.CaOut:
        return S.CaOut(certificate_pem=svc.manufacturing.ca_pem())

    @router.get("/me", tags=["public"], summary="Who the credential belongs to")
    def me(principal: AnyP) -> S.MeOut:
        return S.MeOut(kind=principal.kind, id=principal.subject_id)

    @router.post("/devices/{device_id}/checkin", tags=["devices"], summary="Report a device's network address")
    def check_in(
        device_id: PathId, body: S.CheckInIn, request_source: Annotated[str, Depends(auth.source)]
    ) -> S.DeviceOut:
        """The operator connects to the address and has the device sign a fresh challenge (INTERNAL
        AUTHENTICATE) before recording it. A failed proof counts as a credential failure of the caller."""
        auth.limiter.check(request_source)
        try:
            return S.DeviceOut.model_validate(svc.registry.check_in(device_id.lower(), body.address))
        except (Conflict, DeviceUnavailable):
            # a claim nobody proves counts against the caller (this also bounds probing through the operator)
            auth.limiter.failure(request_source)
            raise

    # --- providers ---------------------------------------------------------------------------------------
    @router.get("/contracts", tags=["provider"], summary="The caller's contracts")
    def my_contracts(p: ProviderP) -> list[S.ContractOut]:
        return [S.ContractOut.model_validate(c) for c in svc.registry.contracts_of(p.subject_id)]

    @router.post(
        "/authorizations",
        tags=["provider"],
        status_code=201,
        responses={202: {"model": S.AuthorizationOut, "description": "Waiting for consent or for the device"}},
        summary="Ask for a container on a device (idempotent per idempotency_key)",
    )
    def request_authorization(body: S.AuthorizationRequest, p: ProviderP, response: Response) -> S.AuthorizationOut:
        ref = DeviceRef(body.device.serial, body.device.device_id, body.device.idp_pointer)
        outcome = svc.placement.request(p.subject_id, body.contract_id, ref, body.idempotency_key)
        if outcome.bundle is None:
            response.status_code = 202
        return authorization_out(outcome)

    @router.get("/authorizations", tags=["provider"], summary="The caller's recent authorizations")
    def list_authorizations(p: ProviderP) -> list[S.AuthorizationSummary]:
        return [S.AuthorizationSummary.model_validate(a) for a in svc.placement.of_provider(p.subject_id)]

    @router.get("/authorizations/{authorization_id}", tags=["provider"], summary="State (and bundle) of a request")
    def get_authorization(authorization_id: PathId, p: ProviderP) -> S.AuthorizationOut:
        return authorization_out(svc.placement.get(p.subject_id, authorization_id))

    @router.post(
        "/authorizations/{authorization_id}/ownership",
        tags=["provider"],
        summary="Report that the initial keys were replaced; the operator erases them",
    )
    def report_ownership(authorization_id: PathId, p: ProviderP) -> S.AuthorizationOut:
        return authorization_out(svc.placement.report_owned(p.subject_id, authorization_id))

    @router.get("/containers", tags=["provider"], summary="The caller's containers")
    def my_containers(p: ProviderP) -> list[S.ContainerOut]:
        return [container_out(c) for c in svc.revocation.containers(p.subject_id)]

    @router.get("/containers/{container_id}", tags=["provider"])
    def get_container(container_id: PathId, p: ProviderOrAdmin) -> S.ContainerOut:
        return container_out(svc.revocation.container(p, container_id))

    @router.post("/containers/{container_id}/revoke", tags=["provider"], summary="Revoke a container")
    def revoke_container(container_id: PathId, p: ProviderOrAdmin) -> S.ContainerOut:
        reason = "provider_request" if p.kind == "provider" else "operator_request"
        return container_out(svc.revocation.revoke(p, container_id, reason))

    @router.post("/containers/{container_id}/lock", tags=["provider"], summary="Lock a container (reversible)")
    def lock_container(container_id: PathId, p: ProviderOrAdmin) -> S.ContainerOut:
        return container_out(svc.revocation.set_locked(p, container_id, True))

    @router.post("/containers/{container_id}/unlock", tags=["provider"], summary="Unlock a container")
    def unlock_container(container_id: PathId, p: ProviderOrAdmin) -> S.ContainerOut:
        return container_out(svc.revocation.set_locked(p, container_id, False))

    # --- holders -----------------------------------------------------------------------------------------
    @router.get("/holder/devices", tags=["holder"], summary="My devices, their containers and who holds them")
    def holder_devices(h: HolderP) -> list[S.HolderDeviceOut]:
        out = []
        for device, rows in svc.registry.holder_view(h.subject_id):
            containers = [
                S.HolderContainerOut(
                    index=c.index,
                    aid=container_aid(c.index).hex().upper(),
                    state=c.state,
                    provider_id=c.provider_id,
                    provider_name=name,
                )
                for c, name in rows
            ]
            out.append(
                S.HolderDeviceOut(id=device.id, serial=device.serial, status=device.status, containers=containers)
            )
        return out

    @router.get("/holder/requests", tags=["holder"], summary="Requests waiting for my consent")
    def holder_requests(h: HolderP) -> list[S.ConsentRequestOut]:
        names = {p.id: p.name for p in svc.registry.providers()}
        return [
            S.ConsentRequestOut(
                id=a.id,
                device_id=a.device_id,
                provider_id=a.provider_id,
                provider_name=names.get(a.provider_id),
                contract_id=a.contract_id,
                created_at=a.created_at,
                expires_at=a.expires_at,
            )
            for a in svc.consent.pending(h.subject_id)
        ]

    @router.post("/holder/requests/{authorization_id}/approve", tags=["holder"], summary="Approve with the code")
    def approve(authorization_id: PathId, body: S.ConsentIn, h: HolderP) -> S.AuthorizationSummary:
        return S.AuthorizationSummary.model_validate(
            svc.consent.decide(h.subject_id, authorization_id, body.code, True).authorization
        )

    @router.post("/holder/requests/{authorization_id}/refuse", tags=["holder"], summary="Refuse with the code")
    def refuse(authorization_id: PathId, body: S.ConsentIn, h: HolderP) -> S.AuthorizationSummary:
        return S.AuthorizationSummary.model_validate(
            svc.consent.decide(h.subject_id, authorization_id, body.code, False).authorization
        )

    @router.post(
        "/holder/devices/{device_id}/lost",
        tags=["holder"],
        status_code=202,
        summary="Report my device lost or stolen: every container is revoked",
    )
    def report_lost(device_id: PathId, h: HolderP) -> S.JobOut:
        return S.JobOut.model_validate(svc.revocation.report_lost(h.subject_id, device_id.lower()))

    # --- identity providers ------------------------------------------------------------------------------
    @router.post("/idp/resolve", tags=["idp"], summary="The address and status of the device a handle names")
    def idp_resolve(body: S.ResolveIn, i: IdpP) -> S.ResolvedDeviceOut:
        """A handle is a device id or a pointer registered by this identity provider (or by staff). POST keeps
        the handle, a pseudonym, out of URLs and access logs."""
        found = svc.idps.resolve(i.subject_id, body.handle)
        return S.ResolvedDeviceOut(device_id=found.device_id, address=found.address, status=found.status)

    @router.post(
        "/idp/devices/{device_id}/pointers",
        tags=["idp"],
        status_code=204,
        summary="Let a pointer name a device the identity provider has just authenticated",
    )
    def idp_register_pointer(
        device_id: PathId, body: S.IdpPointerIn, i: IdpP, request_source: Annotated[str, Depends(auth.source)]
    ) -> Response:
        """The body carries the login's proof: the challenge (which opens with its UNIX time) and the device's
        signature. A proof that does not verify counts as a credential failure of the caller."""
        proof = DeviceProof(bytes.fromhex(body.challenge), bytes.fromhex(body.signature))
        try:
            svc.idps.register_pointer(i.subject_id, device_id.lower(), body.pointer, proof)
        except Conflict as exc:
            if exc.code in ("identity_failed", "stale_proof"):
                auth.limiter.failure(request_source)
            raise
        return Response(status_code=204)

    # --- operator staff ----------------------------------------------------------------------------------
    @router.post("/admin/idps", tags=["admin"], status_code=201, summary="Register an identity provider")
    def register_idp(body: S.IdpCreate, _: Admin) -> S.IssuedCredentialOut:
        idp, credential = svc.idps.register(body.name)
        return S.IssuedCredentialOut.of(idp, credential)

    @router.post(
        "/admin/idps/{idp_id}/credential",
        tags=["admin"],
        summary="Replace an identity provider's credentials by a new one (shown once)",
    )
    def rotate_idp_credential(idp_id: PathId, _: Admin) -> S.IssuedCredentialOut:
        idp, credential = svc.idps.new_credential(idp_id)
        return S.IssuedCredentialOut.of(idp, credential)

    @router.get("/admin/idps", tags=["admin"])
    def list_idps(_: Admin) -> list[S.IdpOut]:
        return [S.IdpOut.model_validate(i) for i in svc.idps.all()]

    @router.post("/admin/providers", tags=["admin"], status_code=201, summary="Register a provider")
    def register_provider(body: S.ProviderCreate, _: Admin) -> S.IssuedCredentialOut:
        provider, credential = svc.registry.register_provider(body.name)
        return S.IssuedCredentialOut.of(provider, credential)

    @router.post(
        "/admin/providers/{provider_id}/credential",
        tags=["admin"],
        summary="Replace a provider's credentials by a new one (shown once)",
    )
    def rotate_provider_credential(provider_id: PathId, _: Admin) -> S.IssuedCredentialOut:
        provider, credential = svc.registry.new_provider_credential(provider_id)
        return S.IssuedCredentialOut.of(provider, credential)

    @router.get("/admin/providers", tags=["admin"])
    def list_providers(_: Admin) -> list[S.ProviderOut]:
        return [S.ProviderOut.model_validate(p) for p in svc.registry.providers()]

    @router.post("/admin/contracts", tags=["admin"], status_code=201, summary="Create a contract")
    def create_contract(body: S.ContractCreate, _: Admin) -> S.ContractOut:
        return S.ContractOut.model_validate(
            svc.registry.create_contract(
                body.provider_id,
                ContractOption(body.option),
                body.quota,
                container_index=body.container_index,
                reserved=body.reserved,
                consent_required=body.consent_required,
            )
        )

    @router.get("/admin/contracts/{contract_id}", tags=["admin"])
    def get_contract(contract_id: PathId, _: Admin) -> S.ContractOut:
        return S.ContractOut.model_validate(svc.registry.contract(contract_id))

    @router.post(
        "/admin/contracts/{contract_id}/end",
        tags=["admin"],
        status_code=202,
        summary="End a contract: a job revokes its containers across the fleet",
    )
    def end_contract(contract_id: PathId, _: Admin) -> S.JobOut:
        return S.JobOut.model_validate(svc.revocation.end_contract(contract_id))

    @router.post("/admin/holders", tags=["admin"], status_code=201, summary="Create a holder")
    def create_holder(body: S.HolderCreate, _: Admin) -> S.IssuedCredentialOut:
        holder, credential = svc.registry.create_holder(body.name)
        return S.IssuedCredentialOut.of(holder, credential)

    @router.post("/admin/holders/{holder_id}/devices", tags=["admin"], status_code=204, summary="Link a device")
    def link_device(holder_id: PathId, body: S.HolderLink, _: Admin) -> Response:
        svc.registry.link_device(holder_id, body.device_id.lower())
        return Response(status_code=204)

    @router.post("/admin/devices", tags=["admin"], status_code=201, summary="Manufacture a device")
    def manufacture(body: S.ManufactureIn, _: Admin) -> S.ManufacturedOut:
        made = svc.manufacturing.manufacture(
            [ContainerPlan(c.quota, c.reserved) for c in body.containers], serial=body.serial
        )
        base = S.DeviceOut.model_validate(made.device)
        return S.ManufacturedOut(
            **base.model_dump(),
            certificate_pem=made.device.certificate_pem,
            store_path=str(made.store_path),
            vault_uri=made.vault_uri,
        )

    @router.get("/admin/devices", tags=["admin"])
    def list_devices(
        _: Admin,
        after: Annotated[str, Query(max_length=64)] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[S.DeviceOut]:
        return [S.DeviceOut.model_validate(d) for d in svc.registry.devices(after=after, limit=limit)]

    @router.get("/admin/devices/{device_id}", tags=["admin"])
    def get_device(device_id: PathId, _: Admin) -> S.DeviceDetailOut:
        device = svc.registry.device(device_id.lower())
        containers = [container_out(c) for c in svc.registry.containers(device.id)]
        return S.DeviceDetailOut(**S.DeviceOut.model_validate(device).model_dump(), containers=containers)

    @router.post("/admin/devices/{device_id}/pointers", tags=["admin"], status_code=204, summary="Add a pointer")
    def add_pointer(device_id: PathId, body: S.PointerIn, _: Admin) -> Response:
        svc.registry.add_pointer(device_id.lower(), body.pointer)
        return Response(status_code=204)

    @router.post("/admin/devices/{device_id}/reconcile", tags=["admin"], summary="Reconcile with GET STATUS")
    def reconcile(device_id: PathId, _: Admin) -> S.DeviceDetailOut:
        with svc.ops.session(device_id.lower()):
            pass
        return get_device(device_id, _)

    @router.post("/admin/devices/{device_id}/rotate-keys", tags=["admin"], summary="Rotate operator keys")
    def rotate_device(device_id: PathId, _: Admin) -> S.RotationOut:
        return S.RotationOut(device_id=device_id.lower(), kvn=svc.revocation.rotate_device(device_id.lower()))

    @router.post("/admin/fleet/rotate-keys", tags=["admin"], status_code=202, summary="Rotate the whole fleet")
    def rotate_fleet(_: Admin) -> S.JobOut:
        return S.JobOut.model_validate(svc.revocation.rotate_fleet())

    @router.get("/admin/jobs", tags=["admin"])
    def list_jobs(_: Admin) -> list[S.JobOut]:
        return [S.JobOut.model_validate(j) for j in svc.jobs.recent()]

    @router.get("/admin/jobs/{job_id}", tags=["admin"])
    def get_job(job_id: PathId, _: Admin) -> S.JobOut:
        return S.JobOut.model_validate(svc.jobs.get(job_id))

    @router.get("/admin/audit", tags=["admin"], summary="Read the audit log")
    def read_audit(
        _: Admin,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        subject: Annotated[str | None, Query(max_length=128)] = None,
    ) -> list[S.AuditEntryOut]:
        with svc.env.db.transaction() as s:
            records = svc.env.audit.read(s, after=after, limit=limit, subject=subject)
        return [S.AuditEntryOut(**r.__dict__) for r in records]

    @router.get("/admin/audit/verify", tags=["admin"], summary="Verify the audit hash chain")
    def verify_audit(_: Admin) -> S.AuditVerifyOut:
        with svc.env.db.transaction() as s:
            report = svc.env.audit.verify(s)
        return S.AuditVerifyOut(
            ok=report.ok, entries=report.entries, first_bad_seq=report.first_bad_seq, problem=report.problem
        )

    return router
