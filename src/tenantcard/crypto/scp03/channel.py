"""Secure messaging state shared by both ends of an SCP03 session (GP Amd D §6.2.3-§6.2.7).

Not public API: ``Scp03Host`` and ``Scp03Card`` each hold one ``Channel`` after the handshake.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03.kdf import Prf, SessionKeys
from tenantcard.wire.apdu import CLA_SECURE_MESSAGING as CLA_SECURE_MESSAGING
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import SecurityLevel

BLOCK = 16
_PAD = b"\x80" + bytes(BLOCK - 1)
C_MAC = SecurityLevel.C_MAC.value
C_DECRYPTION = SecurityLevel.C_DECRYPTION.value
R_MAC = SecurityLevel.R_MAC.value
R_ENCRYPTION = SecurityLevel.R_ENCRYPTION.value


_SHORT = 4 * BLOCK  # up to this many padded bytes, CBC encryption is chained here over the kept ECB context


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2 to a multiple of 16 (Amd D §6.2.6, §6.2.7)."""
    return data + _PAD[: BLOCK - len(data) % BLOCK]


def unpad(data: bytes) -> bytes:
    """Inverse of :func:`pad`; any defect is a SecureChannelError.

    Padding longer than one block is accepted: some cards emit it (see the S16 vectors), and the data was
    MAC-verified before it is decrypted, so leniency here reveals nothing.
    """
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise SecureChannelError()
    return stripped[:-1]


def lc_bytes(length: int, extended: bool) -> bytes:
    """The Lc field as it appears in the command (ISO 7816-4 §5.1); the C-MAC covers it (Amd D §6.2.4)."""
    if extended or length > 0xFF:
        return b"\x00" + length.to_bytes(2, "big")
    return bytes([length])


def is_error_sw(sw: int) -> bool:
    """Amd D §6.2.5/§6.2.7: every status word but 9000 and the warnings 62xx/63xx is an error."""
    return sw != 0x9000 and sw >> 8 not in (0x62, 0x63)


class Channel:
    """MAC chaining value, encryption counter and session keys of one open secure channel."""

    __slots__ = ("_aes_enc", "_ecb", "_ecb_dec", "_keys", "_mac", "_rmac", "counter", "level", "mac_chain", "mac_len")

    def __init__(
        self, keys: SessionKeys, *, s16: bool, mac_prf: Prf | None = None, mac_chain: bytes = bytes(BLOCK)
    ) -> None:
        self._keys = keys
        self._aes_enc = algorithms.AES(keys.enc)
        self._mac = mac_prf or Prf(keys.mac)
        self._rmac: Prf | None = None  # keyed on first use: levels 01/03 never need it
        self._ecb: CipherContext | None = None  # made on first use: many sessions never encrypt
        self._ecb_dec: CipherContext | None = None
        self.mac_len = BLOCK if s16 else 8
        self.mac_chain = mac_chain
        self.counter = 1  # Amd D §6.2.6: set to 1 when the session opens, before the first command
        self.level = 0

    # -- C-MAC (Amd D §6.2.4) -------------------------------------------------------------------------------------

    def command_mac(self, header: bytes, lc: bytes, data: bytes) -> bytes:
        """CMAC(S-MAC, chaining value || header || Lc || data); returns the full 16 bytes (next chaining value)."""
        return self._mac.mac(self.mac_chain + header + lc + data)

    def mac_command(self, cmd: CommandApdu, data: bytes, extended: bool) -> CommandApdu:
        """Append a C-MAC to ``data`` (already encrypted if needed) and advance the chaining value."""
        cla = cmd.cla | CLA_SECURE_MESSAGING
        total = len(data) + self.mac_len
        # The Lc that will go on the wire: extended when asked, or when the data or Le need it (ISO 7816-4 §5.1).
        ext = extended or total > 0xFF or (cmd.le is not None and cmd.le > 0x100)
        header = bytes([cla, cmd.ins, cmd.p1, cmd.p2])
        self.mac_chain = self.command_mac(header, lc_bytes(total, ext), data)
        wrapped = data + self.mac_chain[: self.mac_len]
        return CommandApdu(cla, cmd.ins, cmd.p1, cmd.p2, wrapped, cmd.le, extended=ext)

    def verify_command(self, cmd: CommandApdu) -> bytes:
        """Check the C-MAC of a received command; returns the data without it and advances the chaining value."""
        n = self.mac_len
        if not cmd.cla & CLA_SECURE_MESSAGING or len(cmd.data) < n:
            raise SecureChannelError()
        body, received = cmd.data[:-n], cmd.data[-n:]
        full = self.command_mac(cmd.header, lc_bytes(len(cmd.data), cmd.extended), body)
        if not hmac.compare_digest(full[:n], received):
            raise SecureChannelError()
        self.mac_chain = full
        return body

    # -- C-ENC / R-ENC (Amd D §6.2.6, §6.2.7) ---------------------------------------------------------------------

    def _ecb_context(self) -> CipherContext:
        if self._ecb is None:
            self._ecb = Cipher(self._aes_enc, modes.ECB()).encryptor()  # noqa: S305 - ICV, Amd D §6.2.6
        return self._ecb

    def _icv(self, counter: int, response: bool) -> bytes:
        block = counter.to_bytes(BLOCK, "big")
        if response:
            block = b"\x80" + block[1:]
        return self._ecb_context().update(block)

    # AES-CBC with the ICV (Amd D §6.2.6, §6.2.7). Short data is chained here over one kept AES-ECB context
    # (no new cipher context per command); decryption of any length takes one ECB pass and one XOR.

    def encrypt(self, data: bytes, counter: int, *, response: bool) -> bytes:
        icv = self._icv(counter, response)
        padded = pad(data)
        if len(padded) > _SHORT:
            enc = Cipher(self._aes_enc, modes.CBC(icv)).encryptor()
            return enc.update(padded) + enc.finalize()
        ecb = self._ecb_context()
        out = []
        block = icv
        for i in range(0, len(padded), BLOCK):
            block = ecb.update(_xor(padded[i : i + BLOCK], block))
            out.append(block)
        return b"".join(out)

    def decrypt(self, data: bytes, counter: int, *, response: bool) -> bytes:
        if not data or len(data) % BLOCK:
            raise SecureChannelError()
        icv = self._icv(counter, response)
        if self._ecb_dec is None:
            self._ecb_dec = Cipher(self._aes_enc, modes.ECB()).decryptor()  # noqa: S305 - CBC by hand
        return unpad(_xor(self._ecb_dec.update(data), icv + data[:-BLOCK]))

    # -- R-MAC (Amd D §6.2.5) ------------------------------------------------------------------------------------

    def response_mac(self, data: bytes, sw: bytes) -> bytes:
        """CMAC(S-RMAC, chaining value of the command || data || SW), truncated."""
        if self._rmac is None:
            self._rmac = Prf(self._keys.rmac)
        return self._rmac.mac(self.mac_chain + data + sw)[: self.mac_len]
