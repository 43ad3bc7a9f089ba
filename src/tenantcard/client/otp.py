"""Host side of the OTP function (HOTP RFC 4226, TOTP RFC 6238) of a container: one verb per command.

Works over any session object with ``transmit(CommandApdu) -> ResponseApdu`` (a ``ContainerSession``):
provider verbs need the provider's secure channel at level 03 or higher (the seed travels encrypted),
``calculate`` needs whatever the credential's access rule says (by default the holder PIN verified on this
connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tenantcard.client.errors import ResponseError, StatusError
from tenantcard.crypto.otp import HashAlgorithm
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    CalculateRequest,
    CalculateResponse,
    CredentialEntry,
    CredentialKind,
    OathAlgorithm,
    OathCredential,
    OathIns,
    ReplaceMode,
    name_data,
)
from tenantcard.wire.gp import Cla
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access

# What a refusal means, for messages a person can act on.
REASONS: dict[int, str] = {
    SW.SECURITY_STATUS_NOT_SATISFIED: "access denied (verify the holder PIN, or open the provider channel)",
    SW.REFERENCED_DATA_NOT_FOUND: "no such credential or key",
    SW.ALREADY_EXISTS: "the name or slot is taken (use replace)",
    SW.NOT_ENOUGH_MEMORY: "the container's memory quota is exceeded",
    SW.INCORRECT_DATA: "the container refused the data",
    SW.CONDITIONS_NOT_SATISFIED: "the container is not in a state to do this",
    SW.INS_NOT_SUPPORTED: "the container does not offer this function",
    SW.INCORRECT_P1P2: "bad parameters",
    SW.WRONG_LENGTH: "bad data length",
}


class FunctionChannel(Protocol):
    """What the function clients need of a container session."""

    def transmit(self, cmd: CommandApdu) -> ResponseApdu: ...


class FunctionError(StatusError):
    """A container function refused a command; ``sw`` says why, the message says it in words."""

    def __init__(self, sw: SW | int, operation: str) -> None:
        reason = REASONS.get(int(sw), "refused")
        super().__init__(sw, f"{operation}: {reason}")


def call(channel: FunctionChannel, cmd: CommandApdu, operation: str) -> bytes:
    """Send ``cmd``; the response data on 9000, else FunctionError."""
    try:
        resp = channel.transmit(cmd)
    except StatusError as exc:
        if isinstance(exc, FunctionError):
            raise
        raise FunctionError(exc.sw, operation) from None
    if resp.sw != SW.OK:
        raise FunctionError(resp.sw, operation)
    return resp.data


@dataclass(frozen=True, slots=True)
class OtpCode:
    """A code computed by the container and the counter or time step it belongs to."""

    code: str
    moving_factor: int


# The verbs the OTP and challenge-response functions share (OathIns: put, calculate, delete, list).
def put_credential(channel: FunctionChannel, ins: OathIns, cred: OathCredential, replace: bool, operation: str) -> None:
    mode = ReplaceMode.REPLACE if replace else ReplaceMode.CREATE
    call(channel, CommandApdu(Cla.GP, ins, mode, 0, cred.to_bytes()), operation)


def calculate(channel: FunctionChannel, ins: OathIns, request: CalculateRequest, operation: str) -> CalculateResponse:
    data = call(channel, CommandApdu(Cla.GP, ins, 0, 0, request.to_bytes()), operation)
    try:
        return CalculateResponse.parse(data)
    except WireError as exc:
        raise ResponseError("malformed calculate response") from exc


def ascii_code(response: CalculateResponse, operation: str) -> OtpCode:
    try:
        return OtpCode(response.response.decode("ascii"), response.moving_factor)
    except UnicodeDecodeError as exc:
        raise ResponseError(f"{operation} response is not ASCII") from exc


def delete_credential(channel: FunctionChannel, ins: OathIns, name: str | bytes, operation: str) -> None:
    call(channel, CommandApdu(Cla.GP, ins, 0, 0, name_data(name_bytes(name))), operation)


def list_credentials(channel: FunctionChannel, ins: OathIns, operation: str) -> list[CredentialEntry]:
    data = call(channel, CommandApdu(Cla.GP, ins, 0, 0), operation)
    try:
        return CredentialEntry.parse_list(data)
    except WireError as exc:
        raise ResponseError("malformed credential list") from exc


def name_bytes(name: str | bytes) -> bytes:
    return name.encode() if isinstance(name, str) else name


class OtpClient:
    """The OTP function of one selected container."""

    def __init__(self, session: FunctionChannel) -> None:
        self._session = session

    def load_seed(
        self,
        name: str | bytes,
        secret: bytes,
        *,
        totp: bool = False,
        algorithm: HashAlgorithm | str = HashAlgorithm.SHA1,
        digits: int = 6,
        counter: int = 0,
        period: int = 30,
        t0: int = 0,
        access: Access = Access.HOLDER,
        replace: bool = False,
    ) -> None:
        """Provider: load an HOTP (``counter``) or TOTP (``period``, ``t0``) seed."""
        alg = HashAlgorithm.from_name(algorithm) if isinstance(algorithm, str) else algorithm
        cred = OathCredential(
            name_bytes(name),
            CredentialKind.TOTP if totp else CredentialKind.HOTP,
            secret,
            OathAlgorithm(alg.value),
            digits,
            counter,
            period,
            t0,
            "",
            access,
        )
        put_credential(self._session, OathIns.OTP_PUT, cred, replace, "OTP load")

    def generate(self, name: str | bytes, *, at: int | None = None) -> OtpCode:
        """A code from the container; ``at`` (Unix seconds) for TOTP, else the container's clock."""
        request = CalculateRequest(name_bytes(name), time=at)
        return ascii_code(calculate(self._session, OathIns.OTP_CALCULATE, request, "OTP"), "OTP")

    def delete(self, name: str | bytes) -> None:
        delete_credential(self._session, OathIns.OTP_DELETE, name, "OTP delete")

    def list(self) -> list[CredentialEntry]:
        return list_credentials(self._session, OathIns.OTP_LIST, "OTP list")
