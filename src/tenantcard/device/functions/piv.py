"""PIV personality: a NIST SP 800-73-4 card application inside a container, so PC/SC middleware (OpenSC's
PKCS#11 module) uses the container as a PIV card.

Two faces, one state (kept in the container's sealed ``ObjectStore``):

* **Holder face**: the PIV card application, reached by SELECT of ``PIV_AID`` inside a container session and
  then ISO-class commands (CLA 00): SELECT, GET DATA, VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER,
  GENERAL AUTHENTICATE (SP 800-73-4 Part 2 §3); the card OS does command chaining and GET RESPONSE
  (ISO 7816-4 §5.1.1.1, §7.6.1). Card management (GENERATE ASYMMETRIC KEY PAIR, PUT DATA) is not offered to the holder:
  PIV's card management key 9B is replaced by the provider's secure channel.
* **Provider face**: proprietary commands CLA 80/84, INS 0x56-0x5F, accepted only inside the provider's SCP03
  channel (docs/protocol.md "PIV personality"): set up PIN/PUK and identifiers, generate key pairs, load data
  objects and certificates, read the status, remove the application.

Supported subset: ECC P-256 (algorithm 11) and P-384 (14) keys in slots 9A, 9C, 9D, 9E; signing by GENERAL
AUTHENTICATE (any slot), ECDH key agreement (9D); PIV PIN (key reference 80) and PUK (81).
"""

from __future__ import annotations

import hmac
from collections.abc import MutableMapping
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tenantcard.device.functions.base import FunctionContext
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.piv import (
    CERT_TAGS,
    KEY_SLOTS,
    MANAGEMENT_INS,
    PIN_PROTECTED,
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
    application_property_template,
    ccc_object,
    chuid_object,
    discovery_object,
    fascn_none,
    pad_pin,
    tag_bytes,
    valid_pin_block,
    valid_puk_block,
)
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tlv import Tlv, as_dict, encode_all, parse_all

KIND_STATE = "piv"
KIND_KEY = "piv.key"
KIND_OBJECT = "piv.obj"
STATE_NAME = b"state"

# Per-connection scratch (ctx.session) keys.
_S_PIN = "piv.pin_verified"
_S_PIN_ALWAYS = "piv.pin_fresh"  # PIN verified and not yet used by a 9C signature (SP 800-73-4 Part 1 §3.2.2)
_S_INSTALLED = "piv.installed"

# Fixed by this implementation; built once.
_DISCOVERY = discovery_object()
_APPLICATION_TEMPLATE = application_property_template()


_CURVES: dict[Algorithm, ec.EllipticCurve] = {Algorithm.ECC_P256: ec.SECP256R1(), Algorithm.ECC_P384: ec.SECP384R1()}
_HASHES: dict[Algorithm, hashes.HashAlgorithm] = {
    Algorithm.ECC_P256: hashes.SHA256(),
    Algorithm.ECC_P384: hashes.SHA384(),
}


# SP 800-73-4 Part 1 §3.2: which keys need the PIN (9C: right before each use), which do not (9E).
_PIN_POLICY: dict[KeyRef, str] = {
    KeyRef.AUTHENTICATION: "once",
    KeyRef.SIGNATURE: "always",
    KeyRef.KEY_MANAGEMENT: "once",
    KeyRef.CARD_AUTHENTICATION: "never",
}

DEFAULT_PIN_TRIES = 3
DEFAULT_PUK_TRIES = 3

_HASH_SALT = 16


# ------------------------------------------------------------------------------------------------- state


def _digest(salt: bytes, secret: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(b"tenantcard-piv\x00" + salt + secret)
    return h.finalize()


@dataclass(frozen=True, slots=True)
class Reference:
    """A PIN or PUK: salted digest of its 8-byte padded value and its retry counter."""

    salt: bytes
    digest: bytes
    limit: int
    left: int

    @classmethod
    def new(cls, value: bytes, limit: int, salt: bytes) -> Reference:
        return cls(salt, _digest(salt, value), limit, limit)

    def matches(self, value: bytes) -> bool:
        return hmac.compare_digest(self.digest, _digest(self.salt, value))

    def to_bytes(self) -> bytes:
        return bytes([self.limit, self.left]) + self.salt + self.digest

    @classmethod
    def parse(cls, raw: bytes) -> Reference:
        if len(raw) != 2 + _HASH_SALT + 32:
            raise WireError("bad PIV reference record")
        return cls(raw[2 : 2 + _HASH_SALT], raw[2 + _HASH_SALT :], raw[0], raw[1])


@dataclass(frozen=True, slots=True)
class PivState:
    """The application's persistent record: PIN and PUK."""

    pin: Reference
    puk: Reference

    def to_bytes(self) -> bytes:
        return encode_all([Tlv(0x80, self.pin.to_bytes()), Tlv(0x81, self.puk.to_bytes())])

    @classmethod
    def parse(cls, raw: bytes) -> PivState:
        fields = as_dict(raw)
        if 0x80 not in fields or 0x81 not in fields:
            raise WireError("incomplete PIV state")
        return cls(Reference.parse(fields[0x80]), Reference.parse(fields[0x81]))


@dataclass(frozen=True, slots=True)
class StoredKey:
    algorithm: Algorithm
    der: bytes  # PKCS#8

    def to_bytes(self) -> bytes:
        return bytes([self.algorithm]) + self.der

    @classmethod
    def parse(cls, raw: bytes) -> StoredKey:
        if len(raw) < 2 or raw[0] not in tuple(Algorithm):
            raise WireError("bad PIV key record")
        return cls(Algorithm(raw[0]), raw[1:])

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_der_private_key(self.der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise WireError("PIV key record is not an EC key")
        return key


# ------------------------------------------------------------------------------------------------- encodings


def public_key_template(key: ec.EllipticCurvePublicKey) -> bytes:
    """SP 800-73-4 Part 2 §3.3.2 table 10: 7F49 { 86 uncompressed point }."""
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return Tlv.of(0x7F49, Tlv(0x86, point)).to_bytes()


def prehash(data: bytes, size: int) -> bytes:
    """The value a GENERAL AUTHENTICATE signs, as a digest of the curve's size: FIPS 186-4 §6.4 takes the
    leftmost bits of a longer value; a shorter one is the same integer, left-padded with zeros."""
    return data[:size] if len(data) >= size else bytes(size - len(data)) + data


# ------------------------------------------------------------------------------------------------- the function


def _response(data: bytes = b"", sw: SW = SW.OK) -> ResponseApdu:
    return ResponseApdu.of(sw, data)


class PivFunction:
    """The PIV personality (see module docstring). Stateless: state lives in ``ctx.store`` and ``ctx.session``."""

    name = "piv"
    # SELECT by the full AID or by the PIX without its version (SP 800-73-4 Part 2 §3.1.1; OpenSC uses the
    # latter): the card OS routes these AIDs, inside a container-scoped session, to this function.
    aids = (PIV_AID, PIV_AID[:9])

    # -- plug-in interface ----------------------------------------------------------------------------------

    def handles(self, ins: int) -> bool:
        return ins in MANAGEMENT_INS

    def destroy(self, ctx: FunctionContext) -> None:
        self._clear_session(ctx.session)

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """One command of either face: CLA 80/84 = provider face, otherwise the holder face."""
        try:
            if command.cla & 0x80:
                return self._manage(ctx, command)
            return self._holder(ctx, command)
        except (WireError, ValueError, UnsupportedAlgorithm):
            raise ApduError(SW.INCORRECT_DATA, "malformed PIV command data") from None

    def select(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """SELECT of the PIV application (SP 800-73-4 Part 2 §3.1.1): the application property template."""
        return _response(_APPLICATION_TEMPLATE)

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def _clear_session(session: MutableMapping[str, object]) -> None:
        for key in (_S_PIN, _S_PIN_ALWAYS, _S_INSTALLED):
            session.pop(key, None)

    @staticmethod
    def _state(ctx: FunctionContext) -> PivState:
        raw = ctx.store.get(KIND_STATE, STATE_NAME)
        if raw is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "PIV application not set up")
        return PivState.parse(raw)

    @staticmethod
    def _save(ctx: FunctionContext, state: PivState) -> None:
        ctx.store.put(KIND_STATE, STATE_NAME, state.to_bytes())

    # -- holder face (SP 800-73-4 Part 2 §3) -------------------------------------------------------------

    def _holder(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        if command.cla & 0x0C:
            raise ApduError(SW.SECURE_MESSAGING_NOT_SUPPORTED)
        if command.cla & ~0x1C & 0xFF:
            raise ApduError(SW.CLA_NOT_SUPPORTED)
        ins = command.ins
        if not ctx.session.get(_S_INSTALLED):
            if ctx.store.get(KIND_STATE, STATE_NAME) is None:
                # Not set up by the provider: the application does not exist yet (ISO 7816-4 §7.1.1).
                raise ApduError(SW.NOT_FOUND if ins == PivIns.SELECT else SW.CONDITIONS_NOT_SATISFIED)
            # Only a fast path: a later removal makes the state and objects missing, which each command checks.
            ctx.session[_S_INSTALLED] = True
        if ins == PivIns.SELECT:
            return self.select(ctx, command)
        if ins == PivIns.GET_DATA:
            return self._get_data(ctx, command)
        if ins == PivIns.VERIFY:
            return self._verify(ctx, command)
        if ins == PivIns.CHANGE_REFERENCE_DATA:
            return self._change_reference(ctx, command)
        if ins == PivIns.RESET_RETRY_COUNTER:
            return self._reset_retry_counter(ctx, command)
        if ins == PivIns.GENERAL_AUTHENTICATE:
            return self._general_authenticate(ctx, command)
        if ins in (PivIns.GENERATE_ASYMMETRIC_KEY_PAIR, PivIns.PUT_DATA):
            # Card management needs key 9B, which this personality replaces by the provider's channel.
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        raise ApduError(SW.INS_NOT_SUPPORTED)

    def _get_data(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        # SP 800-73-4 Part 2 §3.1.2: P1 P2 = 3F FF, data = 5C tag.
        if (command.p1, command.p2) != (0x3F, 0xFF):
            raise ApduError(SW.INCORRECT_P1P2)
        data = command.data
        if 3 <= len(data) <= 5 and data[0] == 0x5C and data[1] == len(data) - 2:
            name = data[2:]  # 5C 01..03 tag: the one encoding hosts send, read without a TLV parser
        else:
            request = Tlv.parse(data)
            if request.tag != 0x5C or not 1 <= len(request.value) <= 3:
                raise ApduError(SW.INCORRECT_DATA)
            name = request.value
        tag = int.from_bytes(name, "big")
        if tag == DataTag.DISCOVERY:
            return _response(_DISCOVERY)
        if tag in PIN_PROTECTED and not ctx.session.get(_S_PIN):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        content = ctx.store.get(KIND_OBJECT, name)
        if content is None:
            raise ApduError(SW.NOT_FOUND)
        return _response(Tlv(0x53, content).to_bytes())

    def _verify(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        # SP 800-73-4 Part 2 §3.2.1.
        if command.p2 != KeyRef.PIN:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if command.p1 == 0xFF:  # reset the security status
            if command.data:
                raise ApduError(SW.WRONG_LENGTH)
            ctx.session.pop(_S_PIN, None)
            ctx.session.pop(_S_PIN_ALWAYS, None)
            return _response()
        if command.p1 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        state = self._state(ctx)
        if not command.data:
            if ctx.session.get(_S_PIN):
                return _response()
            return _response(sw=SW.retries(state.pin.left) if state.pin.left else SW.AUTH_METHOD_BLOCKED)
        if not valid_pin_block(command.data):
            raise ApduError(SW.INCORRECT_DATA)
        pin, response = self._check(state.pin, command.data)
        self._save(ctx, replace(state, pin=pin))
        if response.ok:
            ctx.session[_S_PIN] = True
            ctx.session[_S_PIN_ALWAYS] = True
        else:
            ctx.session.pop(_S_PIN, None)
            ctx.session.pop(_S_PIN_ALWAYS, None)
        return response

    @staticmethod
    def _check(ref: Reference, value: bytes) -> tuple[Reference, ResponseApdu]:
        """Compare in constant time and count: a wrong value answers 63Cx (x tries left), a blocked
        reference 6983 (SP 800-73-4 Part 2 §3.2.1). The counter is returned, not raised, so it is stored."""
        if ref.left == 0:
            return ref, _response(sw=SW.AUTH_METHOD_BLOCKED)
        if ref.matches(value):
            return replace(ref, left=ref.limit), _response()
        left = ref.left - 1
        return replace(ref, left=left), _response(sw=SW.retries(left) if left else SW.AUTH_METHOD_BLOCKED)

    def _change_reference(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        # SP 800-73-4 Part 2 §3.2.2: data = current value (8) || new value (8).
        if command.p1 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        if command.p2 not in (KeyRef.PIN, KeyRef.PUK):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if len(command.data) != 16:
            raise ApduError(SW.INCORRECT_DATA)
        old, new = command.data[:8], command.data[8:]
        is_pin = command.p2 == KeyRef.PIN
        valid = valid_pin_block if is_pin else valid_puk_block
        if not valid(old) or not valid(new):
            raise ApduError(SW.INCORRECT_DATA)
        state = self._state(ctx)
        ref = state.pin if is_pin else state.puk
        checked, response = self._check(ref, old)
        if response.ok:
            checked = Reference.new(new, ref.limit, ctx.random(_HASH_SALT))
        self._save(ctx, replace(state, pin=checked) if is_pin else replace(state, puk=checked))
        if is_pin and response.ok:
            ctx.session[_S_PIN] = True
        return response

    def _reset_retry_counter(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        # SP 800-73-4 Part 2 §3.2.3: data = PUK (8) || new PIN (8).
        if command.p1 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        if command.p2 != KeyRef.PIN:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if len(command.data) != 16 or not valid_puk_block(command.data[:8]) or not valid_pin_block(command.data[8:]):
            raise ApduError(SW.INCORRECT_DATA)
        state = self._state(ctx)
        puk, response = self._check(state.puk, command.data[:8])
        pin = Reference.new(command.data[8:], state.pin.limit, ctx.random(_HASH_SALT)) if response.ok else state.pin
        self._save(ctx, PivState(pin=pin, puk=puk))
        ctx.session.pop(_S_PIN, None)
        ctx.session.pop(_S_PIN_ALWAYS, None)
        return response

    def _general_authenticate(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        # SP 800-73-4 Part 2 §3.2.4: P1 algorithm, P2 key reference, data = 7C { 82 00, 81 challenge | 85 point }.
        try:
            slot = KeyRef(command.p2)
        except ValueError:
            raise ApduError(SW.INCORRECT_P1P2) from None
        if slot not in KEY_SLOTS:
            raise ApduError(SW.INCORRECT_P1P2)
        raw = ctx.store.get(KIND_KEY, bytes([slot]))
        if raw is None:
            raise ApduError(SW.NOT_FOUND)
        stored = StoredKey.parse(raw)
        if command.p1 != stored.algorithm:
            raise ApduError(SW.INCORRECT_P1P2)
        template = Tlv.parse(command.data)
        if template.tag != 0x7C:
            raise ApduError(SW.INCORRECT_DATA)
        fields = as_dict(template.value)
        if fields.get(0x82) != b"":
            raise ApduError(SW.INCORRECT_DATA)
        policy = _PIN_POLICY[slot]
        if policy == "once" and not ctx.session.get(_S_PIN):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        if policy == "always" and not ctx.session.get(_S_PIN_ALWAYS):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        key = stored.private_key()
        if 0x81 in fields and 0x85 not in fields:
            digest_size = _HASHES[stored.algorithm].digest_size
            digest = prehash(fields[0x81], digest_size)
            answer = key.sign(digest, ec.ECDSA(utils.Prehashed(_HASHES[stored.algorithm])))
        elif 0x85 in fields and 0x81 not in fields and slot == KeyRef.KEY_MANAGEMENT:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[stored.algorithm], fields[0x85])
            answer = key.exchange(ec.ECDH(), peer)
        else:
            raise ApduError(SW.INCORRECT_DATA)
        if policy == "always":
            ctx.session.pop(_S_PIN_ALWAYS, None)
        return _response(Tlv.of(0x7C, Tlv(0x82, answer)).to_bytes())

    # -- provider face (proprietary, docs/protocol.md "PIV personality") ----------------------------------

    def _manage(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        if not ctx.rights.provider:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        ins = command.ins
        if ins == PivIns.SETUP:
            return self._setup(ctx, command)
        if ins == PivIns.STATUS:
            return self._status(ctx, command)
        if ins == PivIns.REMOVE:
            return self._remove(ctx, command)
        self._state(ctx)  # the others need the application set up
        if ins == PivIns.GENERATE_KEY:
            return self._generate(ctx, command)
        if ins == PivIns.PUT_OBJECT:
            return self._put_object(ctx, command)
        if ins == PivIns.DELETE_KEY:
            return self._delete_key(ctx, command)
        raise ApduError(SW.INS_NOT_SUPPORTED)

    def _setup(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 56: 80 PIN, 81 PUK, [82 PIN tries, 83 PUK tries, 84 GUID(16), 85 FASC-N(25), 86 expiry(8)].
        PIN and PUK travel encrypted: the channel must have C-DECRYPTION (GP Amd D §5.1). Replaces PIN,
        PUK and counters; CHUID and CCC are created on first set-up, the CHUID again when 84/85/86 is given."""
        if not ctx.rights.security_level & 0x02:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        if command.p1 or command.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        fields = as_dict(command.data)
        pin, puk = fields.get(T_PIN), fields.get(T_PUK)
        if pin is None or puk is None or not 6 <= len(pin) <= 8:
            raise ApduError(SW.INCORRECT_DATA)
        pin = pad_pin(pin)
        if not valid_pin_block(pin) or not valid_puk_block(puk):
            raise ApduError(SW.INCORRECT_DATA)
        pin_tries = self._tries(fields.get(T_PIN_TRIES), DEFAULT_PIN_TRIES)
        puk_tries = self._tries(fields.get(T_PUK_TRIES), DEFAULT_PUK_TRIES)
        guid, fascn, expiry = fields.get(T_GUID), fields.get(T_FASCN), fields.get(T_EXPIRY)
        if (
            (guid is not None and len(guid) != 16)
            or (fascn is not None and len(fascn) != 25)
            or (expiry is not None and (len(expiry) != 8 or not expiry.isdigit()))
        ):
            raise ApduError(SW.INCORRECT_DATA)
        first = ctx.store.get(KIND_STATE, STATE_NAME) is None
        state = PivState(
            Reference.new(pin, pin_tries, ctx.random(_HASH_SALT)), Reference.new(puk, puk_tries, ctx.random(_HASH_SALT))
        )
        self._save(ctx, state)
        if first or guid is not None or fascn is not None or expiry is not None:
            chuid = chuid_object(
                fascn if fascn is not None else fascn_none(),
                guid if guid is not None else ctx.random(16),
                expiry if expiry is not None else b"20991231",
            )
            ctx.store.put(KIND_OBJECT, tag_bytes(DataTag.CHUID), chuid)
        if first:
            ctx.store.put(KIND_OBJECT, tag_bytes(DataTag.CARD_CAPABILITY_CONTAINER), ccc_object(ctx.random(14)))
        self._clear_session(ctx.session)
        return _response()

    @staticmethod
    def _tries(raw: bytes | None, default: int) -> int:
        if raw is None:
            return default
        if len(raw) != 1 or not 1 <= raw[0] <= 15:
            raise ApduError(SW.INCORRECT_DATA)
        return raw[0]

    def _generate(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 57, P2 = slot, data = 80 algorithm: a new key pair; answers 7F49 { 86 point }. The slot's
        certificate is removed (it certified the previous key)."""
        slot = self._slot(command.p2)
        raw = as_dict(command.data).get(0x80)
        if raw is None or len(raw) != 1:
            raise ApduError(SW.INCORRECT_DATA)
        try:
            algorithm = Algorithm(raw[0])
        except ValueError:
            raise ApduError(SW.FUNCTION_NOT_SUPPORTED) from None
        key = ec.generate_private_key(_CURVES[algorithm])
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        ctx.store.put(KIND_KEY, bytes([slot]), StoredKey(algorithm, der).to_bytes())
        ctx.store.delete(KIND_OBJECT, tag_bytes(CERT_TAGS[slot]))
        return _response(public_key_template(key.public_key()))

    @staticmethod
    def _slot(p2: int) -> KeyRef:
        if p2 not in tuple(KEY_SLOTS):
            raise ApduError(SW.INCORRECT_P1P2)
        return KeyRef(p2)

    def _put_object(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 58: the PIV PUT DATA encoding (SP 800-73-4 Part 2 §3.3.2): 5C tag, 53 content (empty deletes).
        A certificate object must hold 70 with an X.509 certificate whose public key is that slot's key."""
        if command.p1 or command.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        objects = parse_all(command.data)
        if len(objects) != 2 or objects[0].tag != 0x5C or objects[1].tag != 0x53:
            raise ApduError(SW.INCORRECT_DATA)
        name, content = objects[0].value, objects[1].value
        if not 1 <= len(name) <= 3:
            raise ApduError(SW.INCORRECT_DATA)
        tag = int.from_bytes(name, "big")
        if tag == DataTag.DISCOVERY:
            raise ApduError(SW.COMMAND_NOT_ALLOWED)  # fixed by this implementation
        if not content:
            ctx.store.delete(KIND_OBJECT, name)
            return _response()
        slot = next((s for s, t in CERT_TAGS.items() if t == tag), None)
        if slot is not None:
            self._check_certificate(ctx, slot, content)
        ctx.store.put(KIND_OBJECT, name, content)
        return _response()

    @staticmethod
    def _check_certificate(ctx: FunctionContext, slot: KeyRef, content: bytes) -> None:
        fields = as_dict(content)
        if 0x70 not in fields:
            raise ApduError(SW.INCORRECT_DATA)
        if fields.get(0x71, b"\x00") != b"\x00":
            raise ApduError(SW.FUNCTION_NOT_SUPPORTED)  # compressed certificates are not offered
        cert = x509.load_der_x509_certificate(fields[0x70])
        raw = ctx.store.get(KIND_KEY, bytes([slot]))
        if raw is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
        ours = StoredKey.parse(raw).private_key().public_key()
        if cert.public_key() != ours:
            raise ApduError(SW.INCORRECT_DATA)

    def _delete_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 5B, P2 = slot: removes the key and its certificate."""
        slot = self._slot(command.p2)
        found = ctx.store.delete(KIND_KEY, bytes([slot]))
        ctx.store.delete(KIND_OBJECT, tag_bytes(CERT_TAGS[slot]))
        return _response() if found else _response(sw=SW.REFERENCED_DATA_NOT_FOUND)

    def _status(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 5A: 80 set up (0/1), 81 PIN tries left, 82 PUK tries left, 83 slots with a key, 84 object tags
        present (each 3 bytes). Never the PIN or PUK."""
        if command.p1 or command.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        raw = ctx.store.get(KIND_STATE, STATE_NAME)
        if raw is None:
            return _response(Tlv(0x80, b"\x00").to_bytes())
        state = PivState.parse(raw)
        slots = bytes(sorted(n[0] for n in ctx.store.names(KIND_KEY) if len(n) == 1))
        tags = b"".join(n.rjust(3, b"\x00") for n in sorted(ctx.store.names(KIND_OBJECT)))
        body = encode_all(
            [
                Tlv(0x80, b"\x01"),
                Tlv(0x81, bytes([state.pin.left])),
                Tlv(0x82, bytes([state.puk.left])),
                Tlv(0x83, slots),
                Tlv(0x84, tags),
            ]
        )
        return _response(body)

    def _remove(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """INS 5F: removes the application, its keys and objects."""
        if command.p1 or command.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        for kind in (KIND_KEY, KIND_OBJECT, KIND_STATE):
            for name in ctx.store.names(kind):
                ctx.store.delete(kind, name)
        self._clear_session(ctx.session)
        return _response()
