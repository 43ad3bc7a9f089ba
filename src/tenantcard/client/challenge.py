"""Host side of the challenge-response function of a container: HMAC-SHA1/SHA256 and OCRA (RFC 6287)."""

from __future__ import annotations

from tenantcard.client.otp import (
    FunctionChannel,
    OtpCode,
    ascii_code,
    calculate,
    delete_credential,
    list_credentials,
    name_bytes,
    put_credential,
)
from tenantcard.crypto.ocra import OcraSuite, hash_password
from tenantcard.crypto.otp import HashAlgorithm
from tenantcard.wire.functions import (
    CalculateRequest,
    CredentialEntry,
    CredentialKind,
    OathAlgorithm,
    OathCredential,
    OathIns,
)
from tenantcard.wire.tenant import Access


class ChallengeClient:
    """The challenge-response function of one selected container."""

    def __init__(self, session: FunctionChannel) -> None:
        self._session = session

    def _put(self, cred: OathCredential, replace: bool) -> None:
        put_credential(self._session, OathIns.CHALLENGE_PUT, cred, replace, "key load")

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
        cred = OathCredential(name_bytes(name), CredentialKind.HMAC, key, OathAlgorithm(alg.value), access=access)
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
        cred = OathCredential(name_bytes(name), CredentialKind.OCRA, key, counter=counter, suite=suite, access=access)
        self._put(cred, replace)

    def hmac(self, name: str | bytes, challenge: bytes) -> bytes:
        """HMAC of ``challenge`` under the container's key."""
        request = CalculateRequest(name_bytes(name), challenge=challenge)
        return calculate(self._session, OathIns.CHALLENGE_RESPOND, request, "HMAC challenge-response").response

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
        request = CalculateRequest(
            name_bytes(name), time=at, challenge=question.encode(), counter=counter, password_hash=password,
            session=session_info,
        )  # fmt: skip
        return ascii_code(calculate(self._session, OathIns.CHALLENGE_RESPOND, request, "OCRA"), "OCRA")

    def delete(self, name: str | bytes) -> None:
        delete_credential(self._session, OathIns.CHALLENGE_DELETE, name, "challenge-response delete")

    def list(self) -> list[CredentialEntry]:
        return list_credentials(self._session, OathIns.CHALLENGE_LIST, "challenge-response list")
