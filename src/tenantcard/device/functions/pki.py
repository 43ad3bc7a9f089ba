"""PKI in a container: key pairs generated inside (ECDSA P-256, Ed25519), signatures, certificates.

INS 0x40-0x46 (``tenantcard.wire.functions.PkiIns``), P2 = key slot 01-7F. The private key is created from
the container's randomness, sealed in the container's store and never leaves it: no command returns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from tenantcard.device.functions.base import FunctionContext
from tenantcard.device.functions.otp import require_provider, require_rule
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    FnTag,
    GenerateKeyRequest,
    KeyAlgorithm,
    KeyEntry,
    PkiIns,
    ReplaceMode,
    SignMode,
    check_slot,
)
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tenant import Access
from tenantcard.wire.tlv import Tlv, as_dict, encode_all

KEY_KIND = "pki.key"
CERT_KIND = "pki.cert"
MAX_CERTIFICATE = 4096
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SCALAR_SOURCE_BYTES = 40  # FIPS 186-5 §A.2.1: 64 bits more than the order, then reduce

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class SealedKey:
    """A slot's record in the store: ``82 algorithm, 88 access, 84 private value`` (P-256 scalar or Ed25519
    seed, 32 bytes). ``repr`` hides the private value."""

    algorithm: KeyAlgorithm
    access: Access
    private: bytes

    def __repr__(self) -> str:
        return f"SealedKey({self.algorithm.name}, access={self.access.name})"

    def to_bytes(self) -> bytes:
        return encode_all(
            [
                Tlv(FnTag.ALGORITHM, bytes([self.algorithm])),
                Tlv(FnTag.ACCESS, bytes([self.access])),
                Tlv(FnTag.SECRET, self.private),
            ]
        )

    @classmethod
    def parse(cls, data: bytes) -> SealedKey:
        f = as_dict(data)
        return cls(KeyAlgorithm(f[FnTag.ALGORITHM][0]), Access(f[FnTag.ACCESS][0]), f[FnTag.SECRET])

    def load(self) -> PrivateKey:
        if self.algorithm == KeyAlgorithm.EC_P256:
            return ec.derive_private_key(int.from_bytes(self.private, "big"), ec.SECP256R1())
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.private)


def generate_private(algorithm: KeyAlgorithm, source: bytes) -> bytes:
    """The private value of a new key from ``source`` random bytes (the container's RNG)."""
    if algorithm == KeyAlgorithm.EC_P256:
        # FIPS 186-5 §A.2.1: d = (c mod (n - 1)) + 1 with c 64 bits longer than n.
        d = int.from_bytes(source, "big") % (_P256_ORDER - 1) + 1
        return d.to_bytes(32, "big")
    return source[:32]  # RFC 8032 §5.1.5: the private key is 32 random bytes


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class PkiFunction:
    """Key pairs, signatures and certificates of one container (``ContainerFunction``)."""

    name = "pki"
    _INS = frozenset(PkiIns)

    def __init__(self) -> None:
        # Loaded keys by (container, slot), so that SIGN neither reads nor unseals the store. The device serializes
        # commands and this instance sees every change of its device's keys: GENERATE and DELETE drop the entry
        # (before their transaction commits, so a rollback only costs a reload), revocation drops the container's.
        self._loaded: dict[tuple[int, int], tuple[SealedKey, PrivateKey]] = {}

    def handles(self, ins: int) -> bool:
        return ins in self._INS

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        try:
            ins = PkiIns(command.ins)
        except ValueError as exc:
            raise ApduError(SW.INS_NOT_SUPPORTED) from exc
        if ins == PkiIns.LIST:
            if command.p1 or command.p2:
                raise ApduError(SW.INCORRECT_P1P2)
            return ResponseApdu.of(SW.OK, self._list(ctx))
        try:
            slot = check_slot(command.p2)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_P1P2, "bad key slot") from exc
        if ins not in (PkiIns.GENERATE, PkiIns.SIGN) and command.p1:
            raise ApduError(SW.INCORRECT_P1P2)
        try:
            if ins == PkiIns.GENERATE:
                return ResponseApdu.of(SW.OK, self._generate(ctx, command, slot))
            if ins == PkiIns.SIGN:
                return ResponseApdu.of(SW.OK, self._sign(ctx, command, slot))
            if ins == PkiIns.PUBLIC_KEY:
                return ResponseApdu.of(SW.OK, spki(self._key(ctx, slot)[1]))
            if ins == PkiIns.PUT_CERTIFICATE:
                self._put_certificate(ctx, command, slot)
                return ResponseApdu.of(SW.OK)
            if ins == PkiIns.GET_CERTIFICATE:
                cert = ctx.store.get(CERT_KIND, bytes([slot]))
                if cert is None:
                    raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no certificate in this slot")
                return ResponseApdu.of(SW.OK, cert)
            if ins == PkiIns.DELETE:
                require_provider(ctx)
                self._loaded.pop((ctx.container_index, slot), None)
                ctx.store.delete(CERT_KIND, bytes([slot]))
                if not ctx.store.delete(KEY_KIND, bytes([slot])):
                    raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key in this slot")
                return ResponseApdu.of(SW.OK)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "malformed PKI command") from exc
        raise ApduError(SW.INS_NOT_SUPPORTED)

    def _key(self, ctx: FunctionContext, slot: int) -> tuple[SealedKey, PrivateKey]:
        hit = self._loaded.get((ctx.container_index, slot))
        if hit is not None:
            return hit
        raw = ctx.store.get(KEY_KIND, bytes([slot]))
        if raw is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key in this slot")
        sealed = SealedKey.parse(raw)
        loaded = (sealed, sealed.load())
        self._loaded[(ctx.container_index, slot)] = loaded
        return loaded

    def _generate(self, ctx: FunctionContext, command: CommandApdu, slot: int) -> bytes:
        require_provider(ctx)
        if command.p1 not in (ReplaceMode.CREATE, ReplaceMode.REPLACE):
            raise ApduError(SW.INCORRECT_P1P2)
        request = GenerateKeyRequest.parse(command.data)
        name = bytes([slot])
        if command.p1 == ReplaceMode.CREATE and ctx.store.get(KEY_KIND, name) is not None:
            raise ApduError(SW.ALREADY_EXISTS, "slot in use")
        private = generate_private(request.algorithm, ctx.random(_SCALAR_SOURCE_BYTES))
        sealed = SealedKey(request.algorithm, request.access, private)
        ctx.store.put(KEY_KIND, name, sealed.to_bytes())
        self._loaded.pop((ctx.container_index, slot), None)
        ctx.store.delete(CERT_KIND, name)  # a certificate of the replaced key no longer applies
        return spki(sealed.load())

    def _sign(self, ctx: FunctionContext, command: CommandApdu, slot: int) -> bytes:
        if command.p1 not in (SignMode.MESSAGE, SignMode.DIGEST):
            raise ApduError(SW.INCORRECT_P1P2)
        sealed, key = self._key(ctx, slot)
        require_rule(ctx, sealed.access)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            if command.p1 == SignMode.DIGEST:
                raise ApduError(SW.INCORRECT_P1P2, "Ed25519 signs messages (RFC 8032 §5.1.6), not digests")
            return key.sign(command.data)
        if command.p1 == SignMode.DIGEST:
            if len(command.data) != 32:
                raise ApduError(SW.WRONG_LENGTH, "SHA-256 digest is 32 bytes")
            return key.sign(command.data, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return key.sign(command.data, ec.ECDSA(hashes.SHA256()))

    def _put_certificate(self, ctx: FunctionContext, command: CommandApdu, slot: int) -> None:
        require_provider(ctx)
        if not command.data or len(command.data) > MAX_CERTIFICATE:
            raise ApduError(SW.WRONG_LENGTH, "certificate size")
        _, key = self._key(ctx, slot)
        try:
            cert = x509.load_der_x509_certificate(command.data)
            cert_key = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ApduError(SW.INCORRECT_DATA, "not a DER X.509 certificate") from exc
        if cert_key != spki(key):
            raise ApduError(SW.INCORRECT_DATA, "certificate is not for this slot's key")
        ctx.store.put(CERT_KIND, bytes([slot]), command.data)

    def _list(self, ctx: FunctionContext) -> bytes:
        certs = set(ctx.store.names(CERT_KIND))
        out = bytearray()
        for name in ctx.store.names(KEY_KIND):
            raw = ctx.store.get(KEY_KIND, name)
            if raw is None or len(name) != 1:
                continue
            sealed = SealedKey.parse(raw)
            out += KeyEntry(name[0], sealed.algorithm, sealed.access, name in certs).to_bytes()
        return bytes(out)

    def destroy(self, ctx: FunctionContext) -> None:
        for key in [k for k in self._loaded if k[0] == ctx.container_index]:
            del self._loaded[key]
