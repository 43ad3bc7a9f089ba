"""PIV personality from the host side.

* ``PivProvisioner``: the provider's set-up verbs (docs/protocol.md "PIV personality"), sent inside the
  provider's SCP03 channel to its container: PIN/PUK and identifiers, key pair generation, certificates.
* ``PivHolder``: what a holder's middleware does with the container once it is a PIV card (NIST SP 800-73-4
  Part 2 §3): SELECT, GET DATA, VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERAL AUTHENTICATE,
  over any ``Connection`` (PC/SC, TCP, in-process), following 61xx with GET RESPONSE.

PINs and PUKs are passed in and sent; they are never logged nor kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.client.errors import StatusError
from tenantcard.client.otp import FunctionChannel
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.piv import (
    CERT_TAGS,
    PIV_AID,
    T_EXPIRY,
    T_FASCN,
    T_GUID,
    T_PIN,
    T_PIN_TRIES,
    T_PUK,
    T_PUK_TRIES,
    Algorithm,
    DataTag,
    KeyRef,
    PivIns,
    certificate_object,
    pad_pin,
    tag_bytes,
    valid_pin_block,
)
from tenantcard.wire.sw import SW
from tenantcard.wire.tlv import Tlv, as_dict, encode_all

CLA_PROPRIETARY = 0x80  # the channel adds secure messaging (84)

_CURVES: dict[int, ec.EllipticCurve] = {65: ec.SECP256R1(), 97: ec.SECP384R1()}


class PivError(StatusError):
    """The card refused a PIV command; ``sw`` is its status word. Never carries a PIN or PUK."""

    def __init__(self, what: str, sw: SW) -> None:
        super().__init__(sw, what)

    @property
    def tries_left(self) -> int | None:
        """x of 63Cx (wrong PIN/PUK), 0 when blocked (6983), else None."""
        if self.sw.sw1 == 0x63 and self.sw.sw2 & 0xF0 == 0xC0:
            return self.sw.sw2 & 0x0F
        return 0 if self.sw == SW.AUTH_METHOD_BLOCKED else None


def _expect_ok(what: str, response: ResponseApdu) -> bytes:
    if response.sw != SW.OK:
        raise PivError(what, response.sw)
    return response.data


def _pin_block(pin: str) -> bytes:
    block = pad_pin(pin.encode("ascii", "replace"))
    if not valid_pin_block(block):
        raise ValueError("a PIV PIN is 6 to 8 digits")
    return block


def _puk_block(puk: str) -> bytes:
    raw = puk.encode("ascii", "replace")
    if len(raw) != 8:
        raise ValueError("a PIV PUK is 8 characters")
    return raw


def parse_public_key(template: bytes) -> ec.EllipticCurvePublicKey:
    """7F49 { 86 uncompressed point } (SP 800-73-4 Part 2 §3.3.2 table 10) as a P-256 / P-384 key."""
    outer = Tlv.parse(template)
    if outer.tag != 0x7F49:
        raise WireError("not a public key template")
    point = as_dict(outer.value).get(0x86)
    if point is None or len(point) not in _CURVES:
        raise WireError("public key template without an uncompressed P-256/P-384 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[len(point)], point)


@dataclass(frozen=True, slots=True)
class PivStatus:
    """Answer to the provider's STATUS command (INS 5A)."""

    installed: bool
    pin_tries_left: int = 0
    puk_tries_left: int = 0
    slots: tuple[KeyRef, ...] = ()
    objects: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> PivStatus:
        fields = as_dict(data)
        if fields.get(0x80, b"\x00") != b"\x01":
            return cls(False)
        tags = fields.get(0x84, b"")
        return cls(
            True,
            fields[0x81][0],
            fields[0x82][0],
            tuple(KeyRef(b) for b in fields.get(0x83, b"")),
            tuple(int.from_bytes(tags[i : i + 3], "big") for i in range(0, len(tags), 3)),
        )


class PivProvisioner:
    """The provider's PIV set-up over its container session (``ContainerSession`` with the provider's SCP03
    channel open; ``setup`` needs C-DECRYPTION, i.e. level 03 or 33)."""

    def __init__(self, session: FunctionChannel) -> None:
        self._session = session

    def _command(self, what: str, ins: PivIns, data: bytes = b"", p2: int = 0, le: int | None = None) -> bytes:
        return _expect_ok(what, self._session.transmit(CommandApdu(CLA_PROPRIETARY, ins, 0, p2, data, le)))

    def setup(
        self,
        pin: str,
        puk: str,
        *,
        pin_tries: int = 3,
        puk_tries: int = 3,
        guid: bytes | None = None,
        fascn: bytes | None = None,
        expiry: str | None = None,
    ) -> None:
        """Create (or reset the PIN and PUK of) the PIV application. ``expiry`` is YYYYMMDD."""
        _pin_block(pin)
        fields = [
            Tlv(T_PIN, pin.encode("ascii")),
            Tlv(T_PUK, _puk_block(puk)),
            Tlv(T_PIN_TRIES, bytes([pin_tries])),
            Tlv(T_PUK_TRIES, bytes([puk_tries])),
        ]
        if guid is not None:
            fields.append(Tlv(T_GUID, guid))
        if fascn is not None:
            fields.append(Tlv(T_FASCN, fascn))
        if expiry is not None:
            fields.append(Tlv(T_EXPIRY, expiry.encode("ascii")))
        self._command("PIV set-up", PivIns.SETUP, encode_all(fields))

    def generate_key(self, slot: KeyRef, algorithm: Algorithm = Algorithm.ECC_P256) -> ec.EllipticCurvePublicKey:
        """A new key pair in ``slot`` (its certificate is removed); returns the public key."""
        data = self._command(
            "PIV key generation", PivIns.GENERATE_KEY, Tlv(0x80, bytes([algorithm])).to_bytes(), slot, 256
        )
        return parse_public_key(data)

    def put_object(self, tag: int, content: bytes) -> None:
        """Store a PIV data object (content = value of its 53 template); empty content deletes it."""
        data = Tlv(0x5C, tag_bytes(tag)).to_bytes() + Tlv(0x53, content).to_bytes()
        self._command("PIV PUT OBJECT", PivIns.PUT_OBJECT, data)

    def load_certificate(self, slot: KeyRef, certificate: x509.Certificate) -> None:
        """The X.509 certificate of ``slot``'s key (the card checks that it certifies that key)."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.put_object(CERT_TAGS[slot], certificate_object(der))

    def delete_key(self, slot: KeyRef) -> None:
        self._command("PIV key deletion", PivIns.DELETE_KEY, p2=slot)

    def status(self) -> PivStatus:
        return PivStatus.parse(self._command("PIV status", PivIns.STATUS, le=256))

    def remove(self) -> None:
        """Remove the PIV application with its keys and objects."""
        self._command("PIV removal", PivIns.REMOVE)


class PivHolder:
    """The holder's side of a PIV card on ``connection``."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """One command, then GET RESPONSE while the card answers 61xx (ISO 7816-4 §7.6.1)."""
        response = ResponseApdu.parse(self._conn.transmit(command.to_bytes()))
        data = response.data
        while response.sw.sw1 == 0x61:
            get = CommandApdu(0x00, PivIns.GET_RESPONSE, 0, 0, le=response.sw.sw2 or 256)
            response = ResponseApdu.parse(self._conn.transmit(get.to_bytes()))
            data += response.data
        return ResponseApdu(data, response.sw)

    def select(self) -> bytes:
        """SELECT the PIV application; returns its application property template."""
        return _expect_ok("SELECT PIV", self.transmit(CommandApdu(0x00, PivIns.SELECT, 0x04, 0x00, PIV_AID, 256)))

    def get_object(self, tag: int) -> bytes:
        """GET DATA (SP 800-73-4 Part 2 §3.1.2): the object's value (inside 53; the 7E template for discovery)."""
        request = Tlv(0x5C, tag_bytes(tag)).to_bytes()
        data = _expect_ok("GET DATA", self.transmit(CommandApdu(0x00, PivIns.GET_DATA, 0x3F, 0xFF, request, 256)))
        return Tlv.parse(data).value

    def certificate(self, slot: KeyRef) -> x509.Certificate:
        der = as_dict(self.get_object(CERT_TAGS[slot])).get(0x70)
        if der is None:
            raise WireError("certificate object without a certificate")
        return x509.load_der_x509_certificate(der)

    def guid(self) -> bytes:
        return as_dict(self.get_object(DataTag.CHUID))[0x34]

    def verify(self, pin: str) -> None:
        """VERIFY the PIV PIN; ``PivError.tries_left`` tells what is left after a wrong one."""
        command = CommandApdu(0x00, PivIns.VERIFY, 0x00, KeyRef.PIN, _pin_block(pin))
        _expect_ok("VERIFY", self.transmit(command))

    def pin_tries_left(self) -> int | None:
        """VERIFY without data: None when the PIN is verified on this connection, else the tries left."""
        response = self.transmit(CommandApdu(0x00, PivIns.VERIFY, 0x00, KeyRef.PIN))
        if response.sw == SW.OK:
            return None
        tries = PivError("VERIFY", response.sw).tries_left
        if tries is None:
            raise PivError("VERIFY", response.sw)
        return tries

    def change_pin(self, old: str, new: str) -> None:
        data = _pin_block(old) + _pin_block(new)
        _expect_ok(
            "CHANGE REFERENCE DATA", self.transmit(CommandApdu(0x00, PivIns.CHANGE_REFERENCE_DATA, 0, KeyRef.PIN, data))
        )

    def change_puk(self, old: str, new: str) -> None:
        data = _puk_block(old) + _puk_block(new)
        _expect_ok(
            "CHANGE REFERENCE DATA", self.transmit(CommandApdu(0x00, PivIns.CHANGE_REFERENCE_DATA, 0, KeyRef.PUK, data))
        )

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        data = _puk_block(puk) + _pin_block(new_pin)
        _expect_ok(
            "RESET RETRY COUNTER", self.transmit(CommandApdu(0x00, PivIns.RESET_RETRY_COUNTER, 0, KeyRef.PIN, data))
        )

    def sign(self, slot: KeyRef, digest: bytes, algorithm: Algorithm = Algorithm.ECC_P256) -> bytes:
        """GENERAL AUTHENTICATE (SP 800-73-4 Part 2 §3.2.4) over a digest; returns the DER ECDSA signature."""
        template = Tlv.of(0x7C, Tlv(0x82, b""), Tlv(0x81, digest)).to_bytes()
        data = _expect_ok(
            "GENERAL AUTHENTICATE",
            self.transmit(CommandApdu(0x00, PivIns.GENERAL_AUTHENTICATE, algorithm, slot, template, 256)),
        )
        answer = as_dict(Tlv.parse(data).value).get(0x82)
        if answer is None:
            raise WireError("GENERAL AUTHENTICATE answer without a response")
        return answer
