"""SCP03, card side (GP Amd D §7.1, §7.2, §6.2.3-§6.2.7): one session of one security domain.

The card object holds no persistent state. The sequence counter of the key set (Amd D §6.2.2.1) lives in the
caller's store; see :meth:`Scp03Card.initialize_update` for which value to pass and when to persist it.
"""

from __future__ import annotations

import hmac
import os

from tenantcard.crypto.errors import CryptoError, SecureChannelError
from tenantcard.crypto.scp03.channel import (
    C_DECRYPTION,
    R_ENCRYPTION,
    R_MAC,
    Channel,
    is_error_sw,
)
from tenantcard.crypto.scp03.host import I_PSEUDO_RANDOM, I_R_ENC, I_R_MAC, I_S16, KEY_DIVERSIFICATION_LENGTH, SCP03_ID
from tenantcard.crypto.scp03.kdf import (
    DerivationConstant,
    Prf,
    SessionKeys,
    cryptogram,
    pseudo_random_challenge,
    session_keys,
)
from tenantcard.crypto.scp03.keys import RandomSource, StaticKeys
from tenantcard.wire.apdu import CLA_SECURE_MESSAGING, CommandApdu, ResponseApdu
from tenantcard.wire.gp import Ins, SecurityLevel
from tenantcard.wire.sw import SW, ApduError

MAX_SEQUENCE_COUNTER = 0xFFFFFF


class _Pending:
    """State between INITIALIZE UPDATE and EXTERNAL AUTHENTICATE."""

    __slots__ = ("context", "s_mac", "session", "static")

    def __init__(self, static: StaticKeys, session: SessionKeys, s_mac: Prf, context: bytes) -> None:
        self.static = static
        self.session = session
        self.s_mac = s_mac
        self.context = context


class Scp03Card:
    """Card side of SCP03 for one security domain on one connection.

    ``unwrap``/``wrap`` every command/response once :attr:`authenticated`. Every check failure raises
    SecureChannelError and closes the session first (the caller answers 6982 without R-MAC, Amd D §6.2.5);
    malformed INITIALIZE UPDATE / EXTERNAL AUTHENTICATE parameters raise ``ApduError`` with the status word.
    """

    def __init__(
        self,
        *,
        key_diversification_data: bytes,
        sd_aid: bytes,
        random: RandomSource = os.urandom,
        s16: bool = False,
        pseudo_random: bool = True,
    ) -> None:
        if len(key_diversification_data) != KEY_DIVERSIFICATION_LENGTH:
            raise CryptoError("key diversification data must be 10 bytes")
        if not 5 <= len(sd_aid) <= 16:
            raise CryptoError("AID must be 5 to 16 bytes")
        self._div = bytes(key_diversification_data)
        self._aid = bytes(sd_aid)
        self._random = random
        self.s16 = s16
        self.pseudo_random = pseudo_random
        self._pending: _Pending | None = None
        self._channel: Channel | None = None
        self._static: StaticKeys | None = None
        self._counter_in_use = 0

    def __repr__(self) -> str:
        return f"Scp03Card(s16={self.s16}, authenticated={self.authenticated}, level=0x{self.security_level:02X})"

    @property
    def i_parameter(self) -> int:
        """Amd D §5.1 "i": R-MAC and R-ENC supported, S8/S16, pseudo-random or random challenge."""
        return I_R_MAC | I_R_ENC | (I_PSEUDO_RANDOM if self.pseudo_random else 0) | (I_S16 if self.s16 else 0)

    @property
    def authenticated(self) -> bool:
        return self._channel is not None

    @property
    def security_level(self) -> int:
        return self._channel.level if self._channel is not None else 0

    @property
    def kvn(self) -> int | None:
        """KVN of the key set of the open (or opening) session."""
        if self._static is not None:
            return self._static.kvn
        return self._pending.static.kvn if self._pending is not None else None

    @property
    def dek(self) -> bytes:
        """Static Key-DEK of the authenticated key set, for PUT KEY / STORE DATA key decryption."""
        if self._static is None:
            raise SecureChannelError()
        return self._static.dek

    def reset(self) -> None:
        """Close the session (Amd D §6.2.5 on any failure; also SELECT, reset, power off)."""
        self._pending = None
        self._channel = None
        self._static = None
        self._counter_in_use = 0

    def initialize_update(
        self,
        cmd: CommandApdu,
        keys: StaticKeys,
        sequence_counter: int,
        *,
        card_challenge: bytes | None = None,
    ) -> bytes:
        """Answer INITIALIZE UPDATE (Amd D §7.1.1) with ``keys``, the key set the caller selected by P1.

        Returns the response data: key diversification data (10) || KVN, 03, i || card challenge || card
        cryptogram || sequence counter (3 bytes, pseudo-random mode only).

        ``sequence_counter`` is the value to use for this session: the key set's stored counter plus one
        (a fresh key set stores 0, so its first session uses 1). In pseudo-random mode the card challenge is
        derived from it (Amd D §6.2.2.1), so the caller must persist ``sequence_counter`` as the key set's
        counter before this response leaves the card, whatever happens to EXTERNAL AUTHENTICATE; a value is
        never used twice. At 0xFFFFFF the key set is exhausted (6984). In random mode the counter is not used.
        ``card_challenge`` overrides the derived or random challenge (tests replaying recorded sessions).
        Any session open before is closed first.
        """
        self.reset()
        n = 16 if self.s16 else 8
        if cmd.cla & ~0x03 != 0x80 or cmd.ins != Ins.INITIALIZE_UPDATE:
            raise ApduError(SW.CLA_NOT_SUPPORTED, "INITIALIZE UPDATE expects CLA 80")
        if cmd.p2 != 0x00 or cmd.p1 not in (0x00, keys.kvn):
            raise ApduError(SW.INCORRECT_P1P2, "INITIALIZE UPDATE P1/P2")
        if len(cmd.data) != n:
            raise ApduError(SW.WRONG_LENGTH, "host challenge length")
        if self.pseudo_random and not 0 < sequence_counter <= MAX_SEQUENCE_COUNTER:
            raise ApduError(SW.REFERENCE_DATA_NOT_USABLE, "sequence counter exhausted")
        enc_prf = Prf(keys.enc)
        if card_challenge is None:
            if self.pseudo_random:
                card_challenge = pseudo_random_challenge(enc_prf, sequence_counter, self._aid, self.s16)
            else:
                card_challenge = self._random(n)
        if len(card_challenge) != n:
            raise CryptoError("card challenge length does not match the mode")
        context = cmd.data + card_challenge
        session = session_keys(keys, cmd.data, card_challenge, enc_prf=enc_prf)
        s_mac = Prf(session.mac)
        card_cryptogram = cryptogram(s_mac, DerivationConstant.CARD_CRYPTOGRAM, context, self.s16)
        self._pending = _Pending(keys, session, s_mac, context)
        out = self._div + bytes([keys.kvn, SCP03_ID, self.i_parameter]) + card_challenge + card_cryptogram
        if self.pseudo_random:
            out += sequence_counter.to_bytes(3, "big")
        return out

    def external_authenticate(self, cmd: CommandApdu) -> None:
        """Check EXTERNAL AUTHENTICATE (Amd D §7.2.2): its C-MAC and the host cryptogram; opens the session
        at the level in P1. Raises SecureChannelError (session closed) on any failure."""
        pending = self._pending
        self._pending = None
        try:
            if (
                pending is None
                or cmd.ins != Ins.EXTERNAL_AUTHENTICATE
                or cmd.cla & ~0x03 != 0x80 | CLA_SECURE_MESSAGING
            ):
                raise SecureChannelError()
            level = cmd.p1
            if cmd.p2 != 0x00 or not SecurityLevel.valid(level):
                raise SecureChannelError()
            channel = Channel(pending.session, s16=self.s16, mac_prf=pending.s_mac)
            host_cryptogram = channel.verify_command(cmd)
            expected = cryptogram(pending.s_mac, DerivationConstant.HOST_CRYPTOGRAM, pending.context, self.s16)
            if not hmac.compare_digest(host_cryptogram, expected):
                raise SecureChannelError()
        except SecureChannelError:
            self.reset()
            raise
        channel.level = level
        self._channel = channel
        self._static = pending.static

    def unwrap(self, cmd: CommandApdu) -> CommandApdu:
        """Verify the C-MAC and decrypt C-ENC data (Amd D §6.2.4, §6.2.6); returns the plain command with
        CLA b3 cleared. Level 00: only commands without secure messaging pass, unchanged."""
        ch = self._channel
        try:
            if ch is None:
                raise SecureChannelError()
            if ch.level == 0:
                if cmd.cla & CLA_SECURE_MESSAGING:
                    raise SecureChannelError()
                return cmd
            counter = ch.counter
            ch.counter += 1  # Amd D §6.2.6: once per command, with or without a data field
            data = ch.verify_command(cmd)
            if ch.level & C_DECRYPTION and data:
                data = ch.decrypt(data, counter, response=False)
        except SecureChannelError:
            self.reset()
            raise
        self._counter_in_use = counter
        return CommandApdu(
            cmd.cla & ~CLA_SECURE_MESSAGING, cmd.ins, cmd.p1, cmd.p2, data, cmd.le, extended=cmd.extended
        )

    def wrap(self, resp: ResponseApdu) -> ResponseApdu:
        """Protect a response: R-ENC of the data, then R-MAC over data || SW (Amd D §6.2.5, §6.2.7) at levels
        with R-MAC. Error status words go out bare (no data, no R-MAC)."""
        ch = self._channel
        if ch is None or not ch.level & R_MAC:
            return resp
        if is_error_sw(resp.sw):
            return ResponseApdu(b"", resp.sw)
        data = resp.data
        if ch.level & R_ENCRYPTION and data:
            data = ch.encrypt(data, self._counter_in_use, response=True)
        return ResponseApdu(data + ch.response_mac(data, resp.sw.to_bytes()), resp.sw)
