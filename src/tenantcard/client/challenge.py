"""Host side of the challenge-response function of a container: HMAC-SHA1/SHA256 and OCRA (RFC 6287)."""

from __future__ import annotations

from tenantcard.client.errors import ResponseError
from tenantcard.client.otp import FunctionChannel, OtpCode, call, decode_code
from tenantcard.crypto.ocra import OcraSuite, hash_password
from tenantcard.crypto.otp import HashAlgorithm
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    CalculateRequest,
    CredentialEntry,
    CredentialKind,
    OathAlgorithm,
    OathCredential,
    OathIns,
    ReplaceMode,
    name_data,
)
from tenantcard.wire.gp import Cla
from tenantcard.wire.tenant import Access


class ChallengeClient:
    """The challenge-response function of one selected container."""

    def __init__(self, session: FunctionChannel) -> None:
        self._session = session

    def _put(self, cred: OathCredential, replace: bool) -> None:
        mode = ReplaceMode.REPLACE if replace else ReplaceMode.CREATE
        call(self._session, CommandApdu(Cla.GP, OathIns.CHALLENGE_PUT, mode, 0, cred.to_bytes()), "key load")

    def load_hmac_key(
        self,
        name: str | bytes,
        key: bytes,
        *,
        algorithm: HashAlgorithm | str = HashAlgorithm.SHA1,
        access: Access = Access.HOLDER,
        replace: bool = False,
    ) -> None:
        """Provider: an HMAC-SHA1 or HMAC-SHA256 challenge-response key."""
        alg = HashAlgorithm.from_name(algorithm) if isinstance(algorithm, str) else algorithm
        cred = OathCredential(_name(name), CredentialKind.HMAC, key, OathAlgorithm(alg.value), access=access)
        self._put(cred, replace)

    def load_ocra_key(
        self,
        name: str | bytes,
        key: bytes,
        suite: str,
        *,
        counter: int = 0,
        access: Access = Access.HOLDER,
        replace: bool = False,
    ) -> None:
        """Provider: an OCRA key for ``suite`` (RFC 6287 §6), its counter C starting at ``counter``."""
        OcraSuite.parse(suite)  # refuse locally what the container would refuse
        cred = OathCredential(_name(name), CredentialKind.OCRA, key, counter=counter, suite=suite, access=access)
        self._put(cred, replace)

    def hmac(self, name: str | bytes, challenge: bytes) -> bytes:
        """HMAC of ``challenge`` under the container's key."""
        data = CalculateRequest(_name(name), challenge=challenge).to_bytes()
        cmd = CommandApdu(Cla.GP, OathIns.CHALLENGE_RESPOND, 0, 0, data)
        return decode_code(call(self._session, cmd, "HMAC challenge-response")).response

    def ocra(
        self,
        name: str | bytes,
        question: str,
        *,
        counter: int | None = None,
        pin: str | None = None,
        suite: str | None = None,
        session_info: bytes | None = None,
        at: int | None = None,
    ) -> OtpCode:
        """The container's OCRA response to ``question``. ``pin`` is hashed here with the suite's P hash (the
        suite must then be given); ``counter`` overrides the container's C; ``at`` is Unix seconds for T."""
        password = None
        if pin is not None:
            if suite is None:
                raise ValueError("a PIN needs the suite, to hash it as the suite says")
            password = hash_password(OcraSuite.parse(suite), pin)
        data = CalculateRequest(
            _name(name), time=at, challenge=question.encode(), counter=counter, password_hash=password,
            session=session_info,
        ).to_bytes()  # fmt: skip
        resp = decode_code(call(self._session, CommandApdu(Cla.GP, OathIns.CHALLENGE_RESPOND, 0, 0, data), "OCRA"))
        try:
            return OtpCode(resp.response.decode("ascii"), resp.moving_factor)
        except UnicodeDecodeError as exc:
            raise ResponseError("OCRA response is not ASCII") from exc

    def delete(self, name: str | bytes) -> None:
        cmd = CommandApdu(Cla.GP, OathIns.CHALLENGE_DELETE, 0, 0, name_data(_name(name)))
        call(self._session, cmd, "challenge-response delete")

    def list(self) -> list[CredentialEntry]:
        data = call(self._session, CommandApdu(Cla.GP, OathIns.CHALLENGE_LIST, 0, 0), "challenge-response list")
        try:
            return CredentialEntry.parse_list(data)
        except WireError as exc:
            raise ResponseError("malformed credential list") from exc


def _name(name: str | bytes) -> bytes:
    return name.encode() if isinstance(name, str) else name
