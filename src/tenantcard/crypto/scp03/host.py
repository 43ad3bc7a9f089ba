"""SCP03, host side (GP Amd D §7.1, §7.2, §6.2.4-§6.2.7): one session with one security domain."""

from __future__ import annotations

import hmac
import os

from tenantcard.crypto.errors import CryptoError, SecureChannelError
from tenantcard.crypto.scp03.channel import C_DECRYPTION, R_ENCRYPTION, R_MAC, Channel, is_error_sw
from tenantcard.crypto.scp03.kdf import DerivationConstant, Prf, cryptogram, session_keys
from tenantcard.crypto.scp03.keys import RandomSource, StaticKeys
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import Cla, Ins, SecurityLevel
from tenantcard.wire.sw import SW

SCP03_ID = 0x03
I_S16 = 0x01  # Amd D §5.1 "i" parameter bits
I_PSEUDO_RANDOM = 0x10
I_R_MAC = 0x20
I_R_ENC = 0x40
KEY_DIVERSIFICATION_LENGTH = 10


class Scp03Host:
    """Host side of one SCP03 session.

    Call :meth:`initialize_update`, send it, pass the card's answer to :meth:`authenticate`, send the EXTERNAL
    AUTHENTICATE it returns; then :meth:`wrap` each command and :meth:`unwrap` each answer. Any
    SecureChannelError ends the session: start a new ``Scp03Host``.
    """

    def __init__(
        self,
        keys: StaticKeys,
        *,
        s16: bool = False,
        host_challenge: bytes | None = None,
        random: RandomSource = os.urandom,
    ) -> None:
        n = 16 if s16 else 8
        if host_challenge is None:
            host_challenge = random(n)
        if len(host_challenge) != n:
            raise CryptoError("host challenge must be 8 bytes (S8) or 16 bytes (S16)")
        self._keys = keys
        self._host_challenge = bytes(host_challenge)
        self._channel: Channel | None = None
        self._last_counter = 0
        self.s16 = s16
        self.kvn = keys.kvn
        self.security_level = 0
        self.card_challenge = b""
        self.sequence_counter: int | None = None
        self.scp_i: int | None = None
        self.key_diversification_data = b""

    def __repr__(self) -> str:
        return f"Scp03Host(kvn=0x{self.kvn:02X}, s16={self.s16}, level=0x{self.security_level:02X})"

    @property
    def host_challenge(self) -> bytes:
        return self._host_challenge

    @property
    def authenticated(self) -> bool:
        return self._channel is not None

    def initialize_update(self) -> CommandApdu:
        """INITIALIZE UPDATE (Amd D §7.1.1): P1 = KVN (00: the card's choice), P2 = 00, host challenge, Le 00."""
        return CommandApdu(Cla.GP, Ins.INITIALIZE_UPDATE, self.kvn, 0x00, self._host_challenge, le=256)

    def authenticate(self, init_update_response: ResponseApdu, security_level: int) -> CommandApdu:
        """Check the card cryptogram in the INITIALIZE UPDATE response (Amd D §7.1.2) and return the
        EXTERNAL AUTHENTICATE command (Amd D §7.2.1), C-MACed, for ``security_level``."""
        if not SecurityLevel.valid(security_level):
            raise CryptoError("security level must be one of 00, 01, 03, 11, 13, 33")
        if self._channel is not None or init_update_response.sw != SW.OK:
            raise SecureChannelError()
        n = 16 if self.s16 else 8
        data = init_update_response.data
        base = KEY_DIVERSIFICATION_LENGTH + 3 + 2 * n
        if len(data) not in (base, base + 3):
            raise SecureChannelError()
        kvn, scp_id, i = data[10], data[11], data[12]
        if scp_id != SCP03_ID or bool(i & I_S16) != self.s16 or (self.kvn and kvn != self.kvn):
            raise SecureChannelError()
        if bool(i & I_PSEUDO_RANDOM) != (len(data) == base + 3):
            raise SecureChannelError()
        if (security_level & R_MAC and not i & I_R_MAC) or (security_level & R_ENCRYPTION and not i & I_R_ENC):
            raise CryptoError("the card does not support this security level")
        card_challenge = data[13 : 13 + n]
        card_cryptogram = data[13 + n : 13 + 2 * n]
        context = self._host_challenge + card_challenge
        keys = session_keys(self._keys, self._host_challenge, card_challenge)
        s_mac = Prf(keys.mac)
        expected = cryptogram(s_mac, DerivationConstant.CARD_CRYPTOGRAM, context, self.s16)
        if not hmac.compare_digest(expected, card_cryptogram):
            raise SecureChannelError()
        host_cryptogram = cryptogram(s_mac, DerivationConstant.HOST_CRYPTOGRAM, context, self.s16)
        channel = Channel(keys, s16=self.s16, mac_prf=s_mac)
        plain = CommandApdu(Cla.GP, Ins.EXTERNAL_AUTHENTICATE, security_level, 0x00, host_cryptogram)
        command = channel.mac_command(plain, host_cryptogram, extended=False)
        channel.level = security_level
        self._channel = channel
        self.security_level = security_level
        self.card_challenge = bytes(card_challenge)
        self.kvn = kvn
        self.scp_i = i
        self.key_diversification_data = bytes(data[:KEY_DIVERSIFICATION_LENGTH])
        self.sequence_counter = int.from_bytes(data[base:], "big") if len(data) > base else None
        return command

    def wrap(self, cmd: CommandApdu) -> CommandApdu:
        """Protect a command for the card: C-ENC of the data (if the level asks, Amd D §6.2.6), then the C-MAC
        over CLA (b3 set), INS, P1, P2, Lc and data (Amd D §6.2.4). Le is kept, and not MACed."""
        ch = self._channel
        if ch is None:
            raise CryptoError("no secure channel")
        if ch.level == 0:
            return cmd
        counter = ch.counter
        ch.counter += 1  # Amd D §6.2.6: once per command, with or without a data field
        self._last_counter = counter
        data = cmd.data
        if ch.level & C_DECRYPTION and data:
            data = ch.encrypt(data, counter, response=False)
        return ch.mac_command(cmd, data, cmd.extended)

    def unwrap(self, resp: ResponseApdu) -> ResponseApdu:
        """Verify the R-MAC and decrypt R-ENC data (Amd D §6.2.5, §6.2.7). An error status word carries
        neither and is returned as it came."""
        ch = self._channel
        if ch is None:
            raise CryptoError("no secure channel")
        if not ch.level & R_MAC:
            return resp
        if is_error_sw(resp.sw):
            if resp.data:
                raise SecureChannelError()
            return resp
        n = ch.mac_len
        if len(resp.data) < n:
            raise SecureChannelError()
        body, received = resp.data[:-n], resp.data[-n:]
        if not hmac.compare_digest(ch.response_mac(body, resp.sw.to_bytes()), received):
            raise SecureChannelError()
        if ch.level & R_ENCRYPTION and body:
            body = ch.decrypt(body, self._last_counter, response=True)
        return ResponseApdu(body, resp.sw)
