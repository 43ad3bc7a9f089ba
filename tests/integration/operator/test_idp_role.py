"""The identity-provider credential role over real HTTP with real devices: it resolves handles and registers
pointers (on the device's proof) and reaches nothing else; no other credential reaches its routes."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx

from tenantcard.client.isd import IsdSession
from tenantcard.transport.tcp_client import connect
from tests.integration.operator.conftest import LiveOperator
from tests.support.operator_rig import FleetDevice, manufacture, wait_job


def signed(device: FleetDevice, issued_at: float | None = None) -> dict[str, str]:
    """What the IdP saw at login: a challenge opening with its time, and the device's INTERNAL AUTHENTICATE."""
    when = int(time.time() if issued_at is None else issued_at)
    challenge = when.to_bytes(8, "big") + secrets.token_bytes(24)
    with connect(device.address, timeout=10) as conn:
        isd = IsdSession(conn)
        isd.select()
        signature = isd.internal_authenticate(challenge)
    return {"challenge": challenge.hex(), "signature": signature.hex()}


def register_idp(admin: httpx.Client, name: str) -> dict[str, Any]:
    r = admin.post("/v1/admin/idps", json={"name": name})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["credential"].startswith("tci_")
    return body


def _error(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def test_idp_resolves_and_registers_pointers(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    dev = manufacture(admin, containers=1, serial="IDP-A")
    other = manufacture(admin, containers=1, serial="IDP-B")
    try:
        main = register_idp(admin, "Main IdP")
        second = register_idp(admin, "Second IdP")
        assert register_idp.__name__ and admin.post("/v1/admin/idps", json={"name": "Main IdP"}).status_code == 409
        listed = admin.get("/v1/admin/idps").json()
        assert {i["name"] for i in listed} == {"Main IdP", "Second IdP"} and "credential" not in str(listed)
        idp = live_operator.client(main["credential"])
        idp2 = live_operator.client(second["credential"])
        assert idp.get("/v1/me").json() == {"kind": "idp", "id": main["id"]}

        # resolve by device id (either case): the checked-in address and the status
        for handle in (dev.device_id, dev.device_id.upper()):
            r = idp.post("/v1/idp/resolve", json={"handle": handle})
            assert r.status_code == 200, r.text
            assert r.json() == {"device_id": dev.device_id, "address": dev.address, "status": "active"}
        r = idp.post("/v1/idp/resolve", json={"handle": "nobody-knows-this"})
        assert r.status_code == 404 and _error(r) == "not_found"

        # register a pointer with the device's proof; idempotent; then resolvable by this IdP only
        pointer = "pairwise-" + secrets.token_urlsafe(16)
        url = f"/v1/idp/devices/{dev.device_id}/pointers"
        r = idp.post(url, json={"pointer": pointer, **signed(dev)})
        assert r.status_code == 204, r.text
        assert idp.post(url, json={"pointer": pointer, **signed(dev)}).status_code == 204
        r = idp.post("/v1/idp/resolve", json={"handle": pointer})
        assert r.status_code == 200 and r.json()["device_id"] == dev.device_id
        r = idp2.post("/v1/idp/resolve", json={"handle": pointer})
        assert r.status_code == 404 and _error(r) == "not_found"  # another IdP's pointer is unknown to it
        r = idp2.post(url, json={"pointer": pointer, **signed(dev)})
        assert r.status_code == 409 and _error(r) == "pointer_taken"
        r = idp.post(f"/v1/idp/devices/{other.device_id}/pointers", json={"pointer": pointer, **signed(other)})
        assert r.status_code == 409 and _error(r) == "pointer_taken"

        # a pointer staff registered is resolvable by every IdP
        assert admin.post(f"/v1/admin/devices/{other.device_id}/pointers", json={"pointer": "staff-1"}).is_success
        assert idp2.post("/v1/idp/resolve", json={"handle": "staff-1"}).json()["device_id"] == other.device_id

        # the proof must be this device's answer to a fresh challenge
        r = idp.post(f"/v1/idp/devices/{other.device_id}/pointers", json={"pointer": "p-2", **signed(dev)})
        assert r.status_code == 409 and _error(r) == "identity_failed"  # device A's answer for device B
        forged = signed(dev)
        forged["challenge"] = forged["challenge"][:16] + secrets.token_bytes(24).hex()  # same time, other bytes
        r = idp.post(url, json={"pointer": "p-3", **forged})
        assert r.status_code == 409 and _error(r) == "identity_failed"  # an answer to another challenge
        r = idp.post(url, json={"pointer": "p-4", **signed(dev, issued_at=time.time() - 3600)})
        assert r.status_code == 409 and _error(r) == "stale_proof"
        r = idp.post("/v1/idp/devices/00000000000000000000/pointers", json={"pointer": "p-5", **signed(dev)})
        assert r.status_code == 404 and _error(r) == "not_found"
        r = idp.post(url, json={"pointer": "p-6", "challenge": "00", "signature": "00"})
        assert r.status_code == 422 and _error(r) == "invalid_request"
        for handle in ("p-2", "p-3", "p-4"):
            assert idp.post("/v1/idp/resolve", json={"handle": handle}).status_code == 404

        # everything the IdP did is in the audit log under its own actor
        entries = admin.get("/v1/admin/audit", params={"subject": dev.device_id, "limit": 1000}).json()
        mine = [(e["action"], e["details"]) for e in entries if e["actor"] == f"idp:{main['id']}"]
        assert ("device.pointer_added", {}) in mine
        assert ("device.resolved", {"by": "device_id"}) in mine and ("device.resolved", {"by": "pointer"}) in mine
        refused = {d["reason"] for a, d in mine if a == "device.pointer_refused"}
        assert refused == {"identity_failed", "stale_proof"}
        assert pointer not in str(entries)  # the pseudonym itself is not written to the log
        assert admin.get("/v1/admin/audit/verify").json()["ok"]

        # a lost device resolves as lost and takes no new pointer
        holder = admin.post("/v1/admin/holders", json={"name": "Holder"}).json()
        assert admin.post(f"/v1/admin/holders/{holder['id']}/devices", json={"device_id": dev.device_id}).is_success
        lost = live_operator.client(holder["credential"]).post(f"/v1/holder/devices/{dev.device_id}/lost")
        wait_job(admin, lost.json()["id"])
        assert idp.post("/v1/idp/resolve", json={"handle": pointer}).json()["status"] == "lost"
        r = idp.post(url, json={"pointer": "p-7", **signed(dev)})
        assert r.status_code == 409 and _error(r) == "device_not_active"
    finally:
        dev.stop()
        other.stop()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000000000000000", path)


def test_the_idp_credential_reaches_no_provider_holder_or_staff_route(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    idp = live_operator.client(register_idp(admin, "Narrow IdP")["credential"])
    schema = admin.get("/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            tags = set(operation.get("tags", []))
            if tags & {"public", "idp", "devices"}:  # open to all, the IdP's own, the device's own check-in
                continue
            assert tags & {"provider", "holder", "admin"}, (method, path)
            r = idp.request(method.upper(), _concrete(path), json={})
            assert r.status_code == 403 and _error(r) == "forbidden", (method, path, r.status_code, r.text)
            checked += 1
    assert checked > 30


def test_no_other_credential_reaches_the_idp_routes(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    dev = manufacture(admin, containers=1, serial="IDP-C")
    try:
        provider = admin.post("/v1/admin/providers", json={"name": "Bank"}).json()["credential"]
        holder = admin.post("/v1/admin/holders", json={"name": "Holder"}).json()["credential"]
        calls = [
            ("/v1/idp/resolve", {"handle": dev.device_id}),
            (f"/v1/idp/devices/{dev.device_id}/pointers", {"pointer": "x", **signed(dev)}),
        ]
        for credential in (provider, holder, live_operator.settings.admin_token.get_secret_value()):  # type: ignore[union-attr]
            with live_operator.client(credential) as caller:
                for path, body in calls:
                    r = caller.post(path, json=body)
                    assert r.status_code == 403 and _error(r) == "forbidden", (path, r.text)
        with live_operator.client() as anonymous:
            r = anonymous.post("/v1/idp/resolve", json={"handle": dev.device_id})
            assert r.status_code == 401 and _error(r) == "unauthenticated"
        assert admin.post("/v1/idp/resolve", json={"handle": "staff-cannot"}).status_code == 403
    finally:
        dev.stop()


def test_idp_credentials_rotate_and_failures_are_rate_limited(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    dev = manufacture(admin, containers=1, serial="IDP-D")
    try:
        registered = register_idp(admin, "Rotating IdP")
        old = registered["credential"]
        r = admin.post(f"/v1/admin/idps/{registered['id']}/credential")
        assert r.status_code == 200 and r.json()["credential"] != old
        new = r.json()["credential"]
        assert admin.post("/v1/admin/idps/idp_unknown/credential").status_code == 404
        with live_operator.client(new) as idp:
            assert idp.post("/v1/idp/resolve", json={"handle": dev.device_id}).status_code == 200

            # a proof that does not verify counts as a credential failure of the caller (limit 5 per window)
            bad = {"pointer": "q", **signed(dev)}
            bad["challenge"] = bad["challenge"][:16] + secrets.token_bytes(24).hex()
            codes = [idp.post(f"/v1/idp/devices/{dev.device_id}/pointers", json=bad).status_code for _ in range(6)]
            assert codes[:5] == [409] * 5 and codes[5] == 429
            limited = idp.post("/v1/idp/resolve", json={"handle": dev.device_id})
            assert limited.status_code == 429 and _error(limited) == "rate_limited" and "retry-after" in limited.headers
        live_operator.app.state.limiter._failures.clear()  # a new window

        with live_operator.client(old) as revoked:
            codes = [revoked.post("/v1/idp/resolve", json={"handle": dev.device_id}).status_code for _ in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429
        assert old.split(".")[1] not in str(admin.get("/v1/admin/audit", params={"limit": 1000}).json())
    finally:
        dev.stop()
