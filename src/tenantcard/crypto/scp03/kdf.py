"""SCP03 key derivation (GP Amd D §6.2.1-§6.2.2): NIST SP 800-108 counter mode with AES-CMAC as PRF."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from tenantcard.crypto.errors import CryptoError
from tenantcard.crypto.scp03.keys import StaticKeys

_LABEL = bytes(11)  # Amd D §6.2.2: 11 bytes of '00', then constant, separator '00', L, i, context


class DerivationConstant(IntEnum):
    """Amd D §6.2.2 table 6-1 "derivation constant"."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


class Prf:
    """AES-CMAC under one key, keyed once: each computation works on a copy of the keyed state (pyca's
    ``CMAC.copy``), which costs a fraction of a fresh key schedule. Holds key material: never logged."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = CMAC(algorithms.AES(key))

    def __repr__(self) -> str:
        return "Prf()"

    def mac(self, data: bytes) -> bytes:
        """The full 16-byte CMAC of ``data``."""
        mac = self._base.copy()
        mac.update(data)
        return mac.finalize()

    def derive(self, constant: int, context: bytes, length_bits: int) -> bytes:
        """Amd D §6.2.2 data derivation: CMAC(key, label || constant || 00 || L || i || context) for
        i = 1.. until ``length_bits`` are produced (L on two bytes, i on one)."""
        if length_bits <= 0 or length_bits % 8 or length_bits > 0xFFFF:
            raise CryptoError("derived length must be a positive number of bytes")
        prefix = _LABEL + bytes((constant, 0, length_bits >> 8, length_bits & 0xFF))
        if length_bits <= 128:
            return self.mac(prefix + b"\x01" + context)[: length_bits // 8]
        blocks = (length_bits + 127) // 128
        out = b"".join(self.mac(prefix + bytes((i,)) + context) for i in range(1, blocks + 1))
        return out[: length_bits // 8]


def derive(key: bytes, constant: int, context: bytes, length_bits: int) -> bytes:
    """Amd D §6.2.2 data derivation (NIST SP 800-108 counter mode, AES-CMAC) under ``key``."""
    return Prf(key).derive(constant, context, length_bits)


@dataclass(frozen=True, eq=False)
class SessionKeys:
    """S-ENC, S-MAC and S-RMAC of one session (Amd D §6.2.1). ``repr`` never shows key bytes."""

    enc: bytes
    mac: bytes
    rmac: bytes

    def __repr__(self) -> str:
        return f"SessionKeys(aes{8 * len(self.enc)})"

    __str__ = __repr__


def session_keys(
    static: StaticKeys,
    host_challenge: bytes,
    card_challenge: bytes,
    *,
    enc_prf: Prf | None = None,
    mac_prf: Prf | None = None,
) -> SessionKeys:
    """Derive the session keys; context = host challenge || card challenge (Amd D §6.2.1).

    ``enc_prf``/``mac_prf``: the static ENC/MAC keys already keyed, when the caller has them."""
    context = host_challenge + card_challenge
    bits = 8 * static.length
    enc = enc_prf or Prf(static.enc)
    mac = mac_prf or Prf(static.mac)
    return SessionKeys(
        enc.derive(DerivationConstant.S_ENC, context, bits),
        mac.derive(DerivationConstant.S_MAC, context, bits),
        mac.derive(DerivationConstant.S_RMAC, context, bits),
    )


def cryptogram(s_mac: Prf, constant: DerivationConstant, context: bytes, s16: bool) -> bytes:
    """Card or host cryptogram (Amd D §6.2.2.2, §6.2.2.3) under S-MAC: 64 bits in S8 mode, 128 in S16."""
    return s_mac.derive(constant, context, 128 if s16 else 64)


def pseudo_random_challenge(static_enc: Prf, sequence_counter: int, sd_aid: bytes, s16: bool) -> bytes:
    """Pseudo-random card challenge (Amd D §6.2.2.1) under the static ENC key: context = 3-byte sequence
    counter || invoking SD's AID."""
    if not 0 <= sequence_counter <= 0xFFFFFF:
        raise CryptoError("sequence counter out of range")
    context = sequence_counter.to_bytes(3, "big") + sd_aid
    return static_enc.derive(DerivationConstant.CARD_CHALLENGE, context, 128 if s16 else 64)
