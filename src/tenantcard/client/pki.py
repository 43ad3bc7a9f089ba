"""Host side of the PKI function of a container: key pairs generated in the container, signatures, CSRs and
certificates.

A CSR is built with pyca/cryptography's ``CertificateSigningRequestBuilder`` and signed by the container: the
builder is handed a private-key object (``DeviceEcKey`` / ``DeviceEd25519Key``) whose ``sign`` sends the
to-be-signed bytes to the container. The private key never leaves the container.
"""

from __future__ import annotations

from typing import Any, Generic, NoReturn, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.utils import Buffer

from tenantcard.client.errors import ResponseError
from tenantcard.client.otp import FunctionChannel, call
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    GenerateKeyRequest,
    KeyAlgorithm,
    KeyEntry,
    PkiIns,
    ReplaceMode,
    SignMode,
    check_slot,
)
from tenantcard.wire.gp import Cla
from tenantcard.wire.tenant import Access

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
P = TypeVar("P", bound=PublicKey)
_ALG_NAMES = {"p256": KeyAlgorithm.EC_P256, "ec-p256": KeyAlgorithm.EC_P256, "ed25519": KeyAlgorithm.ED25519}


def key_algorithm(name: str | KeyAlgorithm) -> KeyAlgorithm:
    if isinstance(name, KeyAlgorithm):
        return name
    try:
        return _ALG_NAMES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown key algorithm {name!r} (p256 or ed25519)") from None


def _load_public(der: bytes) -> PublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise ResponseError("malformed public key from the container") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ResponseError("unexpected public key type from the container")


def _no_export(*_: object) -> NoReturn:
    raise TypeError("the private key lives in the container and cannot be exported")


class PkiClient:
    """The PKI function of one selected container. Slots are 1..127."""

    def __init__(self, session: FunctionChannel) -> None:
        self._session = session

    def generate_key(
        self,
        slot: int,
        algorithm: KeyAlgorithm | str = KeyAlgorithm.EC_P256,
        *,
        access: Access = Access.HOLDER_OR_PROVIDER,
        replace: bool = False,
    ) -> PublicKey:
        """Provider: a new key pair in ``slot``; ``access`` says who may sign with it. Returns the public key."""
        request = GenerateKeyRequest(key_algorithm(algorithm), access).to_bytes()
        mode = ReplaceMode.REPLACE if replace else ReplaceMode.CREATE
        cmd = CommandApdu(Cla.GP, PkiIns.GENERATE, mode, check_slot(slot), request, le=256)
        return _load_public(call(self._session, cmd, f"generate key in slot {slot}"))

    def public_key(self, slot: int) -> PublicKey:
        cmd = CommandApdu(Cla.GP, PkiIns.PUBLIC_KEY, 0, check_slot(slot), le=256)
        return _load_public(call(self._session, cmd, f"public key of slot {slot}"))

    def sign(self, slot: int, data: bytes, *, prehashed: bool = False) -> bytes:
        """Signature by the key in ``slot``: ECDSA P-256 with SHA-256 (DER), or Ed25519 (64 bytes).
        ``prehashed``: ``data`` is a SHA-256 digest (P-256 only)."""
        mode = SignMode.DIGEST if prehashed else SignMode.MESSAGE
        cmd = CommandApdu(Cla.GP, PkiIns.SIGN, mode, check_slot(slot), data, le=256)
        return call(self._session, cmd, f"sign with slot {slot}")

    def private_key(self, slot: int) -> DeviceEcKey | DeviceEd25519Key:
        """A pyca private-key object whose signatures the container makes (for x509 builders)."""
        public = self.public_key(slot)
        if isinstance(public, ed25519.Ed25519PublicKey):
            return DeviceEd25519Key(self, slot, public)
        return DeviceEcKey(self, slot, public)

    def csr(
        self, slot: int, subject: x509.Name | str, *, extensions: list[x509.ExtensionType] | None = None
    ) -> x509.CertificateSigningRequest:
        """A PKCS#10 request (RFC 2986) for the key in ``slot``, signed in the container. ``subject`` is an
        ``x509.Name`` or an RFC 4514 string such as ``CN=alice,O=Example``."""
        name = x509.Name.from_rfc4514_string(subject) if isinstance(subject, str) else subject
        builder = x509.CertificateSigningRequestBuilder().subject_name(name)
        for ext in extensions or []:
            builder = builder.add_extension(ext, critical=False)
        key = self.private_key(slot)
        if isinstance(key, DeviceEd25519Key):
            return builder.sign(key, None)
        return builder.sign(key, hashes.SHA256())

    def store_certificate(self, slot: int, certificate: x509.Certificate) -> None:
        """Provider: store the certificate of the key in ``slot`` (the container checks that it matches)."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        call(self._session, CommandApdu(Cla.GP, PkiIns.PUT_CERTIFICATE, 0, check_slot(slot), der), "store certificate")

    def get_certificate(self, slot: int) -> x509.Certificate:
        cmd = CommandApdu(Cla.GP, PkiIns.GET_CERTIFICATE, 0, check_slot(slot), le=65536)
        der = call(self._session, cmd, f"certificate of slot {slot}")
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ResponseError("malformed certificate from the container") from exc

    def delete(self, slot: int) -> None:
        call(self._session, CommandApdu(Cla.GP, PkiIns.DELETE, 0, check_slot(slot)), f"delete slot {slot}")

    def list(self) -> list[KeyEntry]:
        data = call(self._session, CommandApdu(Cla.GP, PkiIns.LIST, 0, 0, le=256), "list keys")
        try:
            return KeyEntry.parse_list(data)
        except WireError as exc:
            raise ResponseError("malformed key list") from exc


class _HeldKey(Generic[P]):
    """What a container's key pair is as a pyca private key, whatever its algorithm: a slot, a public key, a
    client to sign through, and no private half to copy or export."""

    def __init__(self, client: PkiClient, slot: int, public: P) -> None:
        self._client = client
        self._slot = slot
        self._public: P = public

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slot={self._slot})"

    def public_key(self) -> P:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _no_export()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


class DeviceEcKey(_HeldKey[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    """An ECDSA P-256 key held by a container, as pyca's private-key interface (signing only)."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("ECDSA only")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            if not isinstance(algorithm._algorithm, hashes.SHA256):
                raise TypeError("the container signs SHA-256 digests only")
            return self._client.sign(self._slot, bytes(data), prehashed=True)
        if not isinstance(algorithm, hashes.SHA256):
            raise TypeError("the container signs with SHA-256 only")
        # Hash here and send the 32-byte digest: the same signature, a shorter command.
        h = hashes.Hash(hashes.SHA256())
        h.update(bytes(data))
        return self._client.sign(self._slot, h.finalize(), prehashed=True)

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise TypeError("the container's key signs only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _no_export()


class DeviceEd25519Key(_HeldKey[ed25519.Ed25519PublicKey], ed25519.Ed25519PrivateKey):
    """An Ed25519 key held by a container, as pyca's private-key interface (signing only)."""

    def sign(self, data: Buffer) -> bytes:
        return self._client.sign(self._slot, bytes(data))

    def private_bytes_raw(self) -> bytes:
        _no_export()
