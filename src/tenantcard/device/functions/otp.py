"""OTP in a container: the provider loads HOTP (RFC 4226) / TOTP (RFC 6238) credentials; the container
computes codes for whoever the credential's access rule admits (by default the holder, PIN verified).

INS 0x30-0x33 (``tenantcard.wire.functions.OathIns``); the challenge-response function shares the credential
format and the helpers below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Set as AbstractSet
from dataclasses import replace

from tenantcard.crypto.otp import MAX_COUNTER, HashAlgorithm, OtpError, hotp, totp
from tenantcard.device.functions.base import Access as RuleAccess
from tenantcard.device.functions.base import FunctionContext
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    CalculateRequest,
    CalculateResponse,
    CredentialKind,
    OathCredential,
    OathIns,
    ReplaceMode,
    parse_name_data,
)
from tenantcard.wire.gp import SecurityLevel
from tenantcard.wire.sw import SW, ApduError

OTP_KIND = "otp"
CHALLENGE_KIND = "challenge"


def require_provider(ctx: FunctionContext, *, secret: bool = False) -> None:
    """Only the provider's secure channel may manage credentials; one that carries a secret needs command
    encryption (GP Amd D §6.2.6, security level 03 or higher)."""
    if not ctx.rights.provider:
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "provider channel required")
    if secret and not ctx.rights.security_level & SecurityLevel.C_DECRYPTION:
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "secret needs C-DECRYPTION")


def require_rule(ctx: FunctionContext, rule: int) -> None:
    if not ctx.rights.allows(RuleAccess(rule)):
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "access rule not met")


def no_p1p2(command: CommandApdu) -> None:
    if command.p1 or command.p2:
        raise ApduError(SW.INCORRECT_P1P2)


def put_credential(
    ctx: FunctionContext, command: CommandApdu, store_kind: str, kinds: AbstractSet[CredentialKind]
) -> None:
    """OTP_PUT / CHALLENGE_PUT: P1 00 create (6A89 if the name is taken), 01 replace."""
    require_provider(ctx, secret=True)
    if command.p1 not in (ReplaceMode.CREATE, ReplaceMode.REPLACE) or command.p2:
        raise ApduError(SW.INCORRECT_P1P2)
    cred = OathCredential.parse(command.data)
    if cred.kind not in kinds:
        raise ApduError(SW.INCORRECT_DATA, "credential kind not handled by this function")
    if command.p1 == ReplaceMode.CREATE and ctx.store.get(store_kind, cred.name) is not None:
        raise ApduError(SW.ALREADY_EXISTS, "credential exists")
    ctx.store.put(store_kind, cred.name, cred.to_bytes())


def load_credential(ctx: FunctionContext, store_kind: str, name: bytes) -> OathCredential:
    raw = ctx.store.get(store_kind, name)
    if raw is None:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such credential")
    return OathCredential.parse(raw)


def delete_credential(ctx: FunctionContext, command: CommandApdu, store_kind: str) -> None:
    require_provider(ctx)
    no_p1p2(command)
    if not ctx.store.delete(store_kind, parse_name_data(command.data)):
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such credential")


def list_credentials(ctx: FunctionContext, command: CommandApdu, store_kind: str) -> bytes:
    """Names and parameters for the holder or the provider; never a secret or a counter."""
    no_p1p2(command)
    if not (ctx.rights.holder or ctx.rights.provider):
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "holder or provider required")
    out = bytearray()
    for name in ctx.store.names(store_kind):
        raw = ctx.store.get(store_kind, name)
        if raw is not None:
            out += OathCredential.parse(raw).entry().to_bytes()
    return bytes(out)


def host_or_device_time(ctx: FunctionContext, request: CalculateRequest) -> int:
    """The time a TOTP/OCRA computation uses: the host's when the request carries one, else the container's."""
    return int(ctx.now()) if request.time is None else request.time


class CredentialFunction(ABC):
    """A function over OATH credentials (``ContainerFunction``): put, compute, delete and list, one instruction
    each, on the credentials of one store kind. A subclass names them and computes."""

    name: str
    store_kind: str
    kinds: frozenset[CredentialKind]
    put_ins: OathIns
    compute_ins: OathIns
    delete_ins: OathIns
    list_ins: OathIns
    malformed: str

    def handles(self, ins: int) -> bool:
        return ins in (self.put_ins, self.compute_ins, self.delete_ins, self.list_ins)

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        try:
            if command.ins == self.put_ins:
                if command.data:
                    self.check(command.data)
                put_credential(ctx, command, self.store_kind, self.kinds)
                return ResponseApdu.of(SW.OK)
            if command.ins == self.compute_ins:
                no_p1p2(command)
                request = CalculateRequest.parse(command.data)
                cred = load_credential(ctx, self.store_kind, request.name)
                require_rule(ctx, cred.access)
                return ResponseApdu.of(SW.OK, self.compute(ctx, cred, request))
            if command.ins == self.delete_ins:
                delete_credential(ctx, command, self.store_kind)
                return ResponseApdu.of(SW.OK)
            if command.ins == self.list_ins:
                return ResponseApdu.of(SW.OK, list_credentials(ctx, command, self.store_kind))
        except (WireError, OtpError) as exc:
            raise ApduError(SW.INCORRECT_DATA, self.malformed) from exc
        raise ApduError(SW.INS_NOT_SUPPORTED)

    def check(self, credential: bytes) -> None:  # noqa: B027 - optional hook
        """Refuse, before anything else, a credential the container could never compute (``put_ins`` data)."""

    @abstractmethod
    def compute(self, ctx: FunctionContext, cred: OathCredential, request: CalculateRequest) -> bytes:
        """The response data for one calculation with ``cred``."""

    def destroy(self, ctx: FunctionContext) -> None:  # noqa: B027 - nothing lives outside the store
        """Nothing lives outside the store."""


class OtpFunction(CredentialFunction):
    """HOTP/TOTP credentials of one container."""

    name = "otp"
    store_kind = OTP_KIND
    kinds = frozenset({CredentialKind.HOTP, CredentialKind.TOTP})
    put_ins = OathIns.OTP_PUT
    compute_ins = OathIns.OTP_CALCULATE
    delete_ins = OathIns.OTP_DELETE
    list_ins = OathIns.OTP_LIST
    malformed = "malformed OTP command"

    def compute(self, ctx: FunctionContext, cred: OathCredential, request: CalculateRequest) -> bytes:
        algorithm = HashAlgorithm(cred.algorithm)
        if cred.kind == CredentialKind.HOTP:
            if request.time is not None or request.challenge is not None or request.counter is not None:
                raise ApduError(SW.INCORRECT_DATA, "HOTP takes the container's counter only")
            if cred.counter >= MAX_COUNTER:
                raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "HOTP counter exhausted")
            code = hotp(cred.secret, cred.counter, cred.digits, algorithm)
            # RFC 4226 §7.2: the token increments its counter with each code it shows.
            ctx.store.put(OTP_KIND, cred.name, replace(cred, counter=cred.counter + 1).to_bytes())
            return CalculateResponse(code.encode("ascii"), cred.counter).to_bytes()
        if request.challenge is not None or request.counter is not None:
            raise ApduError(SW.INCORRECT_DATA, "TOTP takes a time only")
        now = host_or_device_time(ctx, request)
        if now < cred.t0:
            raise ApduError(SW.INCORRECT_DATA, "time before T0")
        code = totp(cred.secret, now, cred.digits, algorithm, cred.period, cred.t0)
        return CalculateResponse(code.encode("ascii"), (now - cred.t0) // cred.period).to_bytes()
