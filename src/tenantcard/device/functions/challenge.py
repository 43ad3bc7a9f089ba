"""Challenge-response in a container: HMAC-SHA1/SHA256 over the host's challenge, and OCRA (RFC 6287).

INS 0x38-0x3B (``tenantcard.wire.functions.OathIns``). The provider loads the key; whoever the credential's
access rule admits asks for responses.
"""

from __future__ import annotations

from dataclasses import replace

from tenantcard.crypto.ocra import OcraError, OcraInput, OcraSuite, ocra
from tenantcard.crypto.otp import HashAlgorithm, hmac_digest
from tenantcard.device.functions.base import FunctionContext
from tenantcard.device.functions.otp import CHALLENGE_KIND, CredentialFunction, host_or_device_time
from tenantcard.wire.functions import CalculateRequest, CalculateResponse, CredentialKind, OathCredential, OathIns
from tenantcard.wire.sw import SW, ApduError


class ChallengeFunction(CredentialFunction):
    """HMAC and OCRA credentials of one container."""

    name = "challenge"
    store_kind = CHALLENGE_KIND
    kinds = frozenset({CredentialKind.HMAC, CredentialKind.OCRA})
    put_ins = OathIns.CHALLENGE_PUT
    compute_ins = OathIns.CHALLENGE_RESPOND
    delete_ins = OathIns.CHALLENGE_DELETE
    list_ins = OathIns.CHALLENGE_LIST
    malformed = "malformed challenge-response command"

    def check(self, credential: bytes) -> None:
        cred = OathCredential.parse(credential)
        if cred.kind == CredentialKind.OCRA:
            OcraSuite.parse(cred.suite)  # raises OcraError: refuse a suite the container could never compute

    def compute(self, ctx: FunctionContext, cred: OathCredential, request: CalculateRequest) -> bytes:
        if request.challenge is None:
            raise ApduError(SW.INCORRECT_DATA, "challenge missing")
        if cred.kind == CredentialKind.HMAC:
            if request.counter is not None or request.password_hash is not None or request.session is not None:
                raise ApduError(SW.INCORRECT_DATA, "HMAC takes a challenge only")
            if not request.challenge:
                raise ApduError(SW.INCORRECT_DATA, "empty challenge")
            return CalculateResponse(
                hmac_digest(cred.secret, request.challenge, HashAlgorithm(cred.algorithm)), 0
            ).to_bytes()
        suite = OcraSuite.parse(cred.suite)
        try:
            question = request.challenge.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ApduError(SW.INCORRECT_DATA, "OCRA challenge is not ASCII") from exc
        counter: int | None = None
        if suite.counter:
            # RFC 6287 §7.1: C is the token's counter unless the host names one (server-side recomputation).
            counter = cred.counter if request.counter is None else request.counter
        elif request.counter is not None:
            raise ApduError(SW.INCORRECT_DATA, "the suite has no counter")
        timestamp = suite.time_steps(host_or_device_time(ctx, request)) if suite.time_step is not None else None
        if suite.time_step is None and request.time is not None:
            raise ApduError(SW.INCORRECT_DATA, "the suite has no timestamp")
        try:
            response = ocra(
                suite, cred.secret, OcraInput(question, counter, request.password_hash, request.session, timestamp)
            )
        except OcraError as exc:
            raise ApduError(SW.INCORRECT_DATA, "OCRA input does not fit the suite") from exc
        if suite.counter and request.counter is None and counter is not None:
            ctx.store.put(CHALLENGE_KIND, cred.name, replace(cred, counter=counter + 1).to_bytes())
        factor = counter if counter is not None else (timestamp or 0)
        return CalculateResponse(response.encode("ascii"), factor).to_bytes()
