"""The authorization code flow with device login, end to end in-process against a real device over TCP."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tenantcard.client.isd import IsdSession
from tenantcard.crypto.identity import verify_device_auth
from tenantcard.idp.login.directory import DeviceStatus
from tenantcard.provider.oidc import TokenError, TokenFailure
from tenantcard.transport.tcp_client import connect
from tests.unit.idp.idp_support import (
    ISSUER,
    REDIRECT_A,
    REDIRECT_B,
    Ca,
    Idp,
    RunningDevice,
    authorize,
    authorize_params,
    new_ca,
    new_pkce,
    redirect_query,
    running_device,
)


def _login(idp: Idp, client: object, hint: str) -> tuple[object, dict[str, str]]:
    from tenantcard.idp.oidc.clients import NewClient

    assert isinstance(client, NewClient)
    oidc = idp.oidc_client(client)
    request = oidc.authorization_url(login_hint=hint)
    response = idp.http.get(request.url, follow_redirects=False)
    return request, redirect_query(response)


def _token(idp: Idp, client_id: str, secret: str, code: str, verifier: str, redirect_uri: str = REDIRECT_A) -> object:
    return idp.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client_id, secret),
    )


def _code(idp: Idp, device: RunningDevice) -> tuple[str, str, dict[str, str]]:
    pkce = new_pkce()
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, pkce, device.address)
    query = redirect_query(authorize(idp.http, params))
    assert query["state"] == params["state"]
    return query["code"], pkce.verifier, params


# -- discovery and keys ---------------------------------------------------------------------------------------


def test_discovery_document(idp: Idp) -> None:
    doc = idp.http.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == ISSUER + "/authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    jwks = idp.http.get("/jwks.json").json()
    assert len(jwks["keys"]) == 1 and jwks["keys"][0]["crv"] == "P-256" and "d" not in jwks["keys"][0]


# -- the happy path -------------------------------------------------------------------------------------------


def test_device_login_gives_a_verified_id_token(idp: Idp, device: RunningDevice) -> None:
    oidc = idp.oidc_client(idp.bank)
    request, query = _login(idp, idp.bank, device.address)
    token = oidc.exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert token.device_address == device.address
    assert token.device_id is None  # not allowed for this client
    assert token.amr == ("hwk",)
    assert token.audience == idp.bank.client.client_id
    assert token.claims["iss"] == ISSUER
    assert token.claims["auth_time"] <= token.claims["iat"] < token.claims["exp"]
    # The provider can now reach the device at the address the token names.
    with connect(token.device_address, timeout=5) as connection:
        isd = IsdSession(connection)
        isd.select()
        assert isd.get_device_id().hex() == device.device_id


def test_login_by_handle_resolved_through_the_directory(idp: Idp, device: RunningDevice) -> None:
    request, query = _login(idp, idp.bank, "my-card")
    token = idp.oidc_client(idp.bank).exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert token.device_address == device.address


def test_client_secret_post_and_userinfo(idp: Idp, device: RunningDevice) -> None:
    code, verifier, _ = _code(idp, device)
    response = idp.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_A,
            "code_verifier": verifier,
            "client_id": idp.bank.client.client_id,
            "client_secret": idp.bank.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and response.headers["cache-control"] == "no-store"
    info = idp.http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    claims = jwt.decode(body["id_token"], ECKey.import_key(idp.http.get("/jwks.json").json()["keys"][0])).claims
    assert info == {"sub": claims["sub"], "device_address": device.address}


def test_pairwise_subjects(idp: Idp, device: RunningDevice) -> None:
    subs = {}
    for name, client in (("bank", idp.bank), ("bank2", idp.bank), ("mail", idp.mail)):
        request, query = _login(idp, client, device.address)
        subs[name] = idp.oidc_client(client).exchange(query["code"], query["state"], request).sub  # type: ignore[arg-type]
    assert subs["bank"] == subs["bank2"]  # stable for one provider
    assert subs["bank"] != subs["mail"]  # different across providers


def test_the_pairwise_sub_names_the_device_for_that_client_only(idp: Idp, device: RunningDevice, ca: Ca) -> None:
    request, query = _login(idp, idp.bank, device.address)
    bank_sub = idp.oidc_client(idp.bank).exchange(query["code"], query["state"], request).sub  # type: ignore[arg-type]
    assert idp.directory.pointers == {bank_sub: device.device_id}  # recorded at the operator once
    # ... with the login's proof: a challenge opening with the login time, signed by the device
    proof = idp.directory.proofs[bank_sub]
    assert len(proof.challenge) == 32 and int.from_bytes(proof.challenge[:8], "big") == int(idp.clock.now)
    with connect(device.address, timeout=5) as conn:
        isd = IsdSession(conn)
        isd.select()
        chain = list(isd.get_certificates())
    verify_device_auth(chain, ca.cert, bytes.fromhex(device.device_id), proof.challenge, proof.signature)
    # The provider logs the holder in again by the sub it holds; the device still proves itself.
    request, query = _login(idp, idp.bank, bank_sub)
    again = idp.oidc_client(idp.bank).exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert again.sub == bank_sub and again.device_address == device.address
    assert len(idp.directory.pointers) == 1
    # Another client cannot use the bank's sub to reach the device.
    params = authorize_params(idp.mail.client.client_id, REDIRECT_B, new_pkce(), bank_sub)
    assert redirect_query(authorize(idp.http, params))["error"] == "access_denied"
    # Anonymous clients leave no pointer behind.
    request, query = _login(idp, idp.anon, device.address)
    idp.oidc_client(idp.anon).exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert len(idp.directory.pointers) == 1


def test_device_id_only_for_clients_allowed_and_anonymous_mode(idp: Idp, device: RunningDevice) -> None:
    request, query = _login(idp, idp.gov, device.address)
    gov = idp.oidc_client(idp.gov).exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert gov.device_id == device.device_id
    anon_subs = set()
    for _ in range(2):
        request, query = _login(idp, idp.anon, device.address)
        anon = idp.oidc_client(idp.anon).exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
        assert anon.device_id is None and anon.device_address == device.address
        assert set(anon.claims) - {"iss", "aud", "azp", "iat", "exp", "auth_time", "amr", "nonce", "at_hash"} == {
            "sub",
            "device_address",
        }
        anon_subs.add(anon.sub)
    assert len(anon_subs) == 2  # nothing links two anonymous logins


def test_no_hint_shows_a_page_that_posts_it(idp: Idp, device: RunningDevice) -> None:
    pkce = new_pkce()
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, pkce, None, state="s<&>\"'")
    page = authorize(idp.http, params)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'name="login_hint"' in page.text and 'method="post"' in page.text
    assert "s&lt;&amp;&gt;&quot;&#x27;" in page.text  # escaped
    posted = idp.http.post("/authorize", data={**params, "login_hint": device.address}, follow_redirects=False)
    query = redirect_query(posted)
    assert query["state"] == params["state"] and "code" in query


# -- the device must prove itself and be active ----------------------------------------------------------------


def test_lost_device_cannot_log_in(idp: Idp, device: RunningDevice) -> None:
    idp.directory.statuses[device.device_id] = DeviceStatus.LOST
    pkce = new_pkce()
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, pkce, device.address)
    query = redirect_query(authorize(idp.http, params))
    assert query["error"] == "access_denied" and query["state"] == params["state"] and "code" not in query
    oidc = idp.oidc_client(idp.bank)
    request = oidc.authorization_url(login_hint=device.address)
    with pytest.raises(TokenError) as caught:
        oidc.handle_redirect(idp.http.get(request.url, follow_redirects=False).headers["location"], request)
    assert caught.value.reason is TokenFailure.OAUTH_ERROR and caught.value.oauth_error == "access_denied"


def test_device_of_another_ca_is_refused(idp: Idp, tmp_path: Path) -> None:
    with running_device(tmp_path, new_ca("rogue CA")) as rogue:
        idp.directory.statuses[rogue.device_id] = DeviceStatus.ACTIVE
        params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), rogue.address)
        assert redirect_query(authorize(idp.http, params))["error"] == "access_denied"


@pytest.mark.parametrize(
    ("hint", "error"),
    [
        ("tcp://127.0.0.1:1", "access_denied"),  # nothing listens there
        ("unknown-handle", "access_denied"),
        ("tcp://[nonsense", "invalid_request"),
        ("bad handle with spaces", "invalid_request"),
    ],
)
def test_bad_hints(idp: Idp, hint: str, error: str) -> None:
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), hint)
    query = redirect_query(authorize(idp.http, params))
    assert query["error"] == error and query["state"] == params["state"]


def test_unknown_device_in_directory_is_refused(idp: Idp, device: RunningDevice) -> None:
    del idp.directory.statuses[device.device_id]
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address)
    assert redirect_query(authorize(idp.http, params))["error"] == "access_denied"


# -- authorization request errors -----------------------------------------------------------------------------


def test_unknown_client_and_unregistered_redirect_are_not_redirected(idp: Idp, device: RunningDevice) -> None:
    pkce = new_pkce()
    unknown = authorize(idp.http, authorize_params("nobody", REDIRECT_A, pkce, device.address))
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_client"
    for uri in ("https://evil.example/callback", REDIRECT_A + "/", REDIRECT_A + "?x=1"):
        wrong = authorize(idp.http, authorize_params(idp.bank.client.client_id, uri, pkce, device.address))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_request"
        assert "location" not in wrong.headers


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_challenge": ""}, "invalid_request"),  # PKCE is required
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"nonce": ""}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"scope": "openid email"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"login_method": "carrier-pigeon"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ],
)
def test_authorization_errors_redirect_with_state(
    idp: Idp, device: RunningDevice, override: dict[str, str], error: str
) -> None:
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address)
    params.update(override)
    params = {k: v for k, v in params.items() if v != ""}
    query = redirect_query(authorize(idp.http, params))
    assert query["error"] == error
    assert query["state"] == params["state"]


def test_a_nonce_is_accepted_once_per_client(idp: Idp, device: RunningDevice) -> None:
    first = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address)
    assert "code" in redirect_query(authorize(idp.http, first))
    again = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address, nonce=first["nonce"])
    assert redirect_query(authorize(idp.http, again))["error"] == "invalid_request"
    other = authorize_params(idp.mail.client.client_id, REDIRECT_B, new_pkce(), device.address, nonce=first["nonce"])
    assert "code" in redirect_query(authorize(idp.http, other))


def test_repeated_parameters_are_refused(idp: Idp, device: RunningDevice) -> None:
    params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address)
    url = "/authorize?" + "&".join(f"{k}={v}" for k, v in params.items()) + "&scope=openid"
    response = idp.http.get(url, follow_redirects=False)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "location" not in response.headers


def test_non_ascii_and_oversized_parameters(idp: Idp, device: RunningDevice) -> None:
    for override in ({"state": "é"}, {"redirect_uri": "https://bank.example/\u2028"}, {"nonce": "x" * 5000}):
        params = authorize_params(idp.bank.client.client_id, REDIRECT_A, new_pkce(), device.address)
        params.update(override)
        response = authorize(idp.http, params)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    weird = authorize_params(idp.bank.client.client_id, 'https://x"\\', new_pkce(), device.address)
    response = authorize(idp.http, {**weird, "response_type": 'co"de\\'})
    assert response.status_code == 400


# -- token endpoint -------------------------------------------------------------------------------------------


def test_code_is_single_use_and_replay_revokes_its_tokens(idp: Idp, device: RunningDevice) -> None:
    code, verifier, _ = _code(idp, device)
    first = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, code, verifier)
    assert first.status_code == 200  # type: ignore[attr-defined]
    access = first.json()["access_token"]  # type: ignore[attr-defined]
    assert idp.http.get("/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    again = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]
    revoked = idp.http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert revoked.status_code == 401 and "invalid_token" in revoked.headers["www-authenticate"]


def test_wrong_or_missing_verifier(idp: Idp, device: RunningDevice) -> None:
    code, _, _ = _code(idp, device)
    wrong = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, code, new_pkce().verifier)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]
    code, _, _ = _code(idp, device)
    missing = idp.http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_A},
        auth=(idp.bank.client.client_id, idp.bank.client_secret),
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_code_expires(idp: Idp, device: RunningDevice) -> None:
    code, verifier, _ = _code(idp, device)
    idp.clock.now += 61
    late = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, code, verifier)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]


def test_code_is_bound_to_client_and_redirect_uri(idp: Idp, device: RunningDevice) -> None:
    code, verifier, _ = _code(idp, device)
    other = _token(idp, idp.mail.client.client_id, idp.mail.client_secret, code, verifier)
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]
    code, verifier, _ = _code(idp, device)
    moved = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, code, verifier, "https://bank.example/x")
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_grant"  # type: ignore[attr-defined]


def test_client_authentication_failures(idp: Idp, device: RunningDevice) -> None:
    code, verifier, _ = _code(idp, device)
    bad = _token(idp, idp.bank.client.client_id, "not-the-secret", code, verifier)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"  # type: ignore[attr-defined]
    assert "Basic" in bad.headers["www-authenticate"]  # type: ignore[attr-defined]
    assert "not-the-secret" not in bad.text  # type: ignore[attr-defined]
    none = idp.http.post("/token", data={"grant_type": "authorization_code", "code": code})
    assert none.status_code == 401 and none.json()["error"] == "invalid_client"
    for header in (b"Basic %%%\xe9", b"Basic " + base64.b64encode(b"\xff\xfe:\xff"), b"Basic " + b"=" * 9, b"Basic"):
        garbage = idp.http.post(
            "/token", data={"grant_type": "authorization_code", "code": code}, headers={"Authorization": header}
        )
        assert garbage.status_code in (400, 401) and garbage.json()["error"] in ("invalid_client", "invalid_request")


def test_token_endpoint_bad_bodies(idp: Idp) -> None:
    assert idp.http.post("/token", content=b"{}", headers={"content-type": "application/json"}).status_code == 400
    big = idp.http.post(
        "/token", content=b"a=" + b"x" * 20000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert big.status_code == 400 and big.json()["error"] == "invalid_request"
    bad_utf8 = idp.http.post(
        "/token", content=b"grant_type=\xff", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert bad_utf8.status_code == 400
    unsupported = idp.http.post("/token", data={"grant_type": "password"})
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    assert idp.http.get("/token").status_code == 405
    assert idp.http.get("/nowhere").json() == {"error": "not_found"}


# -- ID token verification on the provider side ----------------------------------------------------------------


def _issued(idp: Idp, device: RunningDevice) -> tuple[str, str]:
    oidc = idp.oidc_client(idp.bank)
    request, query = _login(idp, idp.bank, device.address)
    response = _token(idp, idp.bank.client.client_id, idp.bank.client_secret, query["code"], request.code_verifier)  # type: ignore[attr-defined]
    assert oidc.verify_id_token(response.json()["id_token"], request.nonce)  # type: ignore[attr-defined]
    return response.json()["id_token"], request.nonce  # type: ignore[attr-defined]


def _b64json(part: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def _reencode(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_tampered_token(idp: Idp, device: RunningDevice) -> None:
    token, nonce = _issued(idp, device)
    header, payload, signature = token.split(".")
    claims = _b64json(payload)
    claims["device_address"] = "tcp://203.0.113.9:4000"
    tampered = ".".join([header, _reencode(claims), signature])
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.bank).verify_id_token(tampered, nonce)
    assert caught.value.reason is TokenFailure.BAD_SIGNATURE
    for garbage in ("", "a.b", "a.b.c", token + "x", "é.é.é"):
        with pytest.raises(TokenError):
            idp.oidc_client(idp.bank).verify_id_token(garbage, nonce)


def test_alg_none_is_refused(idp: Idp, device: RunningDevice) -> None:
    token, nonce = _issued(idp, device)
    _, payload, _ = token.split(".")
    unsigned = _reencode({"alg": "none", "typ": "JWT"}) + "." + payload + "."
    with pytest.raises(TokenError):
        idp.oidc_client(idp.bank).verify_id_token(unsigned, nonce)


def test_expired_wrong_audience_wrong_nonce(idp: Idp, device: RunningDevice) -> None:
    token, nonce = _issued(idp, device)
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.mail).verify_id_token(token, nonce)
    assert caught.value.reason is TokenFailure.WRONG_AUDIENCE
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.bank).verify_id_token(token, nonce + "x")
    assert caught.value.reason is TokenFailure.WRONG_NONCE
    idp.clock.now += 300 + 31
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.bank).verify_id_token(token, nonce)
    assert caught.value.reason is TokenFailure.EXPIRED


def test_token_signed_by_a_foreign_key_or_wrong_issuer(idp: Idp, device: RunningDevice) -> None:
    token, nonce = _issued(idp, device)
    claims = _b64json(token.split(".")[1])
    kid = _b64json(token.split(".")[0])["kid"]
    foreign = jwt.encode({"alg": "ES256", "kid": "foreign"}, claims, ECKey.generate_key("P-256"), algorithms=["ES256"])
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.bank).verify_id_token(foreign, nonce)
    assert caught.value.reason is TokenFailure.UNKNOWN_KEY
    same_kid = jwt.encode({"alg": "ES256", "kid": kid}, claims, ECKey.generate_key("P-256"), algorithms=["ES256"])
    with pytest.raises(TokenError) as caught:
        idp.oidc_client(idp.bank).verify_id_token(same_kid, nonce)
    assert caught.value.reason is TokenFailure.BAD_SIGNATURE
    other_issuer = idp.oidc_client(idp.bank)
    other_issuer.issuer = "http://127.0.0.1:8600/other"
    other_issuer._metadata = idp.oidc_client(idp.bank).metadata()
    with pytest.raises(TokenError) as caught:
        other_issuer.verify_id_token(token, nonce)
    assert caught.value.reason is TokenFailure.WRONG_ISSUER


def test_state_mismatch(idp: Idp, device: RunningDevice) -> None:
    oidc = idp.oidc_client(idp.bank)
    request, query = _login(idp, idp.bank, device.address)
    with pytest.raises(TokenError) as caught:
        oidc.exchange(query["code"], "forged-state", request)  # type: ignore[arg-type]
    assert caught.value.reason is TokenFailure.STATE_MISMATCH


def test_replayed_code_through_the_sdk(idp: Idp, device: RunningDevice) -> None:
    oidc = idp.oidc_client(idp.bank)
    request, query = _login(idp, idp.bank, device.address)
    oidc.exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    with pytest.raises(TokenError) as caught:
        oidc.exchange(query["code"], query["state"], request)  # type: ignore[arg-type]
    assert caught.value.reason is TokenFailure.OAUTH_ERROR and caught.value.oauth_error == "invalid_grant"


def test_key_rotation_relying_party_refetches_on_unknown_kid(idp: Idp, device: RunningDevice) -> None:
    oidc = idp.oidc_client(idp.bank)
    old_token, old_nonce = _issued(idp, device)
    old = oidc.verify_id_token(old_token, old_nonce)  # this client now caches a JWKS with the old key only
    new_kid = idp.app.state.keys.rotate()
    new_token, new_nonce = _issued(idp, device)
    assert _b64json(new_token.split(".")[0])["kid"] == new_kid
    assert oidc.verify_id_token(new_token, new_nonce).sub == old.sub  # unknown kid: JWKS fetched again
    assert oidc.verify_id_token(old_token, old_nonce).sub == old.sub  # the old key is still published
    assert {k["kid"] for k in idp.http.get("/jwks.json").json()["keys"]} == {
        new_kid,
        _b64json(old_token.split(".")[0])["kid"],
    }
