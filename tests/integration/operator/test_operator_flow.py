"""The operator over real HTTP with real device servers: manufacture, two providers, options A and B, consent
approved and refused, ownership, the three revocation triggers, lock/unlock, key rotation, isolation, bad and
rate-limited credentials, audit."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.operator.conftest import LiveOperator
from tests.support.operator_rig import FleetDevice, device_states, manufacture, request, take_ownership, wait_job


def test_whole_operator_flow(live_operator: LiveOperator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tenantcard")
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    admin = live_operator.admin()
    dev = manufacture(admin, containers=2, serial="SER-FLOW-1")
    dev2 = manufacture(admin, containers=1, serial="SER-FLOW-2")
    try:
        secrets = _flow(live_operator, admin, dev, dev2)
    finally:
        dev.stop()
        dev2.stop()
    _no_secrets_logged(caplog, *secrets)


def _flow(op: LiveOperator, admin: httpx.Client, dev: FleetDevice, dev2: FleetDevice) -> list[str]:
    # --- two providers, a holder, three contracts
    a = admin.post("/v1/admin/providers", json={"name": "Provider A"}).json()
    b = admin.post("/v1/admin/providers", json={"name": "Provider B"}).json()
    pa, pb = op.client(a["credential"]), op.client(b["credential"])
    holder = admin.post("/v1/admin/holders", json={"name": "Alice"}).json()
    hc = op.client(holder["credential"])
    assert admin.post(f"/v1/admin/holders/{holder['id']}/devices", json={"device_id": dev.device_id}).status_code == 204
    ca = admin.post("/v1/admin/contracts", json={"provider_id": a["id"], "option": "A", "quota": 4096}).json()
    cb = admin.post(
        "/v1/admin/contracts",
        json={"provider_id": b["id"], "option": "B", "container_index": 5, "quota": 4096, "consent_required": True},
    ).json()
    assert pa.get("/v1/me").json() == {"kind": "provider", "id": a["id"]}

    # --- option A: placed at once, taken over, reported
    key = "req-a-1"
    r = request(pa, ca["id"], {"serial": dev.serial}, key)
    assert r.status_code == 201, r.text
    auth_a = r.json()
    bundle = auth_a["bundle"]
    assert bundle["device_id"] == dev.device_id and bundle["device_address"] == dev.address
    assert bundle["container_aid"] == "F07463000000" and len(bundle["keys"]["enc"]) == 32
    assert len(bundle["kcvs"]["mac"]) == 6 and bundle["expires_at"] > 0
    replay = request(pa, ca["id"], {"serial": dev.serial}, key)
    assert replay.json()["id"] == auth_a["id"] and replay.json()["bundle"]["container_id"] == bundle["container_id"]
    take_ownership(bundle)
    owned = pa.post(f"/v1/authorizations/{auth_a['id']}/ownership")
    assert owned.status_code == 200, owned.text
    assert owned.json()["status"] == "owned" and owned.json()["bundle"]["keys"] is None  # initial keys erased
    assert pa.get(f"/v1/authorizations/{auth_a['id']}").json()["bundle"]["keys"] is None
    container_a = bundle["container_id"]

    # --- option B with consent: refused, then approved
    r = request(pb, cb["id"], {"device_id": dev.device_id})
    assert r.status_code == 202 and r.json()["status"] == "pending_consent"
    refused_id, refused_code = r.json()["id"], r.json()["consent_code"]
    pending = hc.get("/v1/holder/requests").json()
    assert [p["id"] for p in pending] == [refused_id] and pending[0]["provider_name"] == "Provider B"
    assert "consent_code" not in pending[0]
    wrong = hc.post(
        f"/v1/holder/requests/{refused_id}/approve", json={"code": "00000000" if refused_code != "00000000" else "1"}
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_code"
    assert (
        hc.post(f"/v1/holder/requests/{refused_id}/refuse", json={"code": refused_code}).json()["status"] == "refused"
    )
    assert pb.get(f"/v1/authorizations/{refused_id}").json()["status"] == "refused"

    r = request(pb, cb["id"], {"device_id": dev.device_id})
    assert r.status_code == 202
    approved = hc.post(f"/v1/holder/requests/{r.json()['id']}/approve", json={"code": r.json()["consent_code"]})
    assert approved.status_code == 200 and approved.json()["status"] == "placed", approved.text
    bundle_b = pb.get(f"/v1/authorizations/{r.json()['id']}").json()["bundle"]
    assert bundle_b["container_aid"] == "F07463000005"  # option B: the contract's fixed index
    take_ownership(bundle_b)
    assert pb.post(f"/v1/authorizations/{r.json()['id']}/ownership").json()["status"] == "owned"
    container_b = bundle_b["container_id"]
    states = device_states(admin, dev.device_id)
    assert states[0] == ("owned", a["id"]) and states[5] == ("owned", b["id"])
    devices = hc.get("/v1/holder/devices").json()
    holders_view = {c["index"]: c["provider_name"] for c in devices[0]["containers"]}
    assert holders_view[0] == "Provider A" and holders_view[5] == "Provider B"

    # --- isolation: A never reads, requests under, locks or revokes anything of B
    for method, path in [
        ("GET", f"/v1/authorizations/{r.json()['id']}"),
        ("POST", f"/v1/authorizations/{r.json()['id']}/ownership"),
        ("GET", f"/v1/containers/{container_b}"),
        ("POST", f"/v1/containers/{container_b}/lock"),
        ("POST", f"/v1/containers/{container_b}/unlock"),
        ("POST", f"/v1/containers/{container_b}/revoke"),
    ]:
        resp = pa.request(method, path)
        assert resp.status_code == 404, (method, path, resp.text)
    assert request(pa, cb["id"], {"device_id": dev.device_id}).status_code == 404
    assert [c["id"] for c in pa.get("/v1/containers").json()] == [container_a]
    assert all(x["contract_id"] == ca["id"] for x in pa.get("/v1/authorizations").json())
    assert pa.get("/v1/admin/providers").status_code == 403
    assert pa.get("/v1/holder/devices").status_code == 403
    assert device_states(admin, dev.device_id)[5] == ("owned", b["id"])

    # --- lock / unlock
    assert pa.post(f"/v1/containers/{container_a}/lock").json()["state"] == "locked"
    assert device_states(admin, dev.device_id)[0][0] == "locked"
    again = pa.post(f"/v1/containers/{container_a}/lock")
    assert again.status_code == 409 and again.json()["error"]["code"] == "container_state"
    assert pa.post(f"/v1/containers/{container_a}/unlock").json()["state"] == "owned"

    # --- operator key rotation (one device, then the fleet); the device still obeys the operator afterwards
    kvn0 = admin.get(f"/v1/admin/devices/{dev.device_id}").json()["isd_kvn"]
    rotated = admin.post(f"/v1/admin/devices/{dev.device_id}/rotate-keys").json()
    assert rotated["kvn"] != kvn0
    job = wait_job(admin, admin.post("/v1/admin/fleet/rotate-keys").json()["id"])
    assert (job["status"], job["done"], job["total"]) == ("done", 2, 2)
    assert admin.get(f"/v1/admin/devices/{dev.device_id}").json()["isd_kvn"] not in (kvn0, rotated["kvn"])

    # --- revocation 1: by the provider, its own container
    revoked = pa.post(f"/v1/containers/{container_a}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "available"
    assert device_states(admin, dev.device_id)[0] == ("available", None)
    assert pa.get(f"/v1/authorizations/{auth_a['id']}").json()["status"] == "revoked"

    # --- revocation 2: contract end (every container of B under that contract, across the fleet)
    r2 = request(pb, cb["id"], {"serial": dev2.serial})
    # consent is needed but dev2 has no holder
    assert r2.status_code == 409 and r2.json()["error"]["code"] == "no_holder"
    job = wait_job(admin, admin.post(f"/v1/admin/contracts/{cb['id']}/end").json()["id"])
    assert (job["status"], job["done"], job["total"]) == ("done", 1, 1)
    assert device_states(admin, dev.device_id)[5] == ("available", None)
    ended = request(pb, cb["id"], {"device_id": dev.device_id})
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "contract_ended"

    # --- revocation 3: the holder reports the device lost
    r3 = request(pa, ca["id"], {"device_id": dev.device_id})
    assert r3.status_code == 201
    take_ownership(r3.json()["bundle"])
    r4 = request(pa, ca["id"], {"device_id": dev.device_id})  # a second container, left AUTHORIZED
    assert r4.status_code == 201
    lost = hc.post(f"/v1/holder/devices/{dev.device_id}/lost")
    assert lost.status_code == 202
    job = wait_job(admin, lost.json()["id"])
    assert (job["status"], job["done"], job["total"]) == ("done", 2, 2)
    assert all(state == "available" for state, _ in device_states(admin, dev.device_id).values())
    assert admin.get(f"/v1/admin/devices/{dev.device_id}").json()["status"] == "lost"
    after = request(pa, ca["id"], {"device_id": dev.device_id})
    assert after.status_code == 409 and after.json()["error"]["code"] == "device_lost"

    # --- audit: every step recorded, chain intact
    entries = admin.get("/v1/admin/audit", params={"limit": 1000}).json()
    actions = {e["action"] for e in entries}
    assert {
        "authorization.placed",
        "authorization.owned",
        "consent.refused",
        "consent.approved",
        "container.locked",
        "container.unlocked",
        "container.revoked",
        "contract.ended",
        "device.reported_lost",
        "device.keys_rotated",
        "device.checked_in",
    } <= actions
    reasons = sorted(e["details"].get("reason") for e in entries if e["action"] == "container.revoked")
    assert reasons == ["contract_end", "device_loss", "device_loss", "provider_request"]
    assert admin.get("/v1/admin/audit/verify").json()["ok"] is True
    text = " ".join(str(e) for e in entries)
    assert bundle["keys"]["enc"] not in text and a["credential"].split(".")[1] not in text
    keys = [bundle["keys"][k] for k in ("enc", "mac", "dek")] + [bundle_b["keys"][k] for k in ("enc", "mac", "dek")]
    return [*keys, a["credential"], b["credential"], holder["credential"], refused_code]


def _no_secrets_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    logged = caplog.text.lower()
    for secret in secrets:
        assert secret.lower() not in logged


def test_bad_credentials_are_refused_then_rate_limited(live_operator: LiveOperator) -> None:
    anonymous = live_operator.client()
    r = anonymous.get("/v1/contracts")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    assert live_operator.client("Basic abc").get("/v1/contracts").status_code == 401  # failure 1
    limit = live_operator.settings.auth_failure_limit
    for i in range(limit - 1):
        bad = live_operator.client(f"tcp_{i:016x}.wrongsecret").get("/v1/contracts")
        assert bad.status_code == 401, bad.text
    blocked = live_operator.client("tcp_0000000000000000.wrongsecret").get("/v1/contracts")
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "rate_limited"
    assert int(blocked.headers["retry-after"]) >= 1
    # even the right credential is turned away from that source until the window passes
    assert live_operator.admin().get("/v1/admin/providers").status_code == 429


def test_check_in_must_be_proven_by_the_device(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    one = manufacture(admin, containers=1)
    two = manufacture(admin, containers=1)
    try:
        # device one claims device two's address: the device there signs, but with another identity
        r = admin.post(f"/v1/devices/{one.device_id}/checkin", json={"address": two.address})
        assert r.status_code == 409 and r.json()["error"]["code"] == "identity_failed"
        assert admin.get(f"/v1/admin/devices/{one.device_id}").json()["address"] == one.address
        r = admin.post(f"/v1/devices/{one.device_id}/checkin", json={"address": "127.0.0.1:1"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "device_unavailable"
        assert admin.post(f"/v1/devices/{one.device_id}/checkin", json={"address": "no-port"}).status_code == 400
    finally:
        one.stop()
        two.stop()


@pytest.mark.parametrize("body", [{}, {"contract_id": "x"}, {"contract_id": "x", "device": {}, "idempotency_key": "k"}])
def test_malformed_requests_get_a_defined_error(live_operator: LiveOperator, body: dict[str, Any]) -> None:
    admin = live_operator.admin()
    p = admin.post("/v1/admin/providers", json={"name": f"P{uuid.uuid4().hex[:6]}"}).json()
    r = live_operator.client(p["credential"]).post("/v1/authorizations", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = live_operator.client(p["credential"]).post(
        "/v1/authorizations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_provider_credential_rotation(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    p = admin.post("/v1/admin/providers", json={"name": "Rotating"}).json()
    fresh = admin.post(f"/v1/admin/providers/{p['id']}/credential")
    assert fresh.status_code == 200 and fresh.json()["credential"] != p["credential"]
    assert live_operator.client(p["credential"]).get("/v1/contracts").status_code == 401
    assert live_operator.client(fresh.json()["credential"]).get("/v1/contracts").json() == []
    assert admin.post("/v1/admin/providers/prv_none/credential").status_code == 404
