"""SCP03 on the card side, against the floor of the raw pyca/cryptography operations the same work needs.

Session setup: INITIALIZE UPDATE + EXTERNAL AUTHENTICATE handled by ``Scp03Card`` (AES-128, S8, pseudo-random
challenge, level 33); the host's commands are computed once, outside the timed part. It needs 7 AES-CMACs
(GP Amd D §6.2.2): card challenge, S-ENC, S-MAC, S-RMAC, card cryptogram; then the C-MAC of EXTERNAL
AUTHENTICATE and the host cryptogram. The floor is 7 raw CMACs (new CMAC object, one update of a
derivation-sized message, finalize).

Secure messaging: a 200-byte command at level 33 wrapped by ``Scp03Host`` and unwrapped by ``Scp03Card``. The
floor is the raw work: for each side one ICV (AES-ECB block), one AES-CBC pass over the padded data and one
AES-CMAC over header and cryptogram.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from bench.common import Figure, compared
from tenantcard.crypto.scp03 import Scp03Card, Scp03Host, StaticKeys
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID
from tenantcard.wire.sw import SW

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x30)
DIV = bytes(10)
COUNTER = 5
SETUP_CMACS = 7


def _setup_figure(quick: bool) -> Figure:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(KEYS, host_challenge=bytes(range(8)))
    init = host.initialize_update()
    # The same counter every round gives the same card challenge, so one EXTERNAL AUTHENTICATE serves all.
    ea = host.authenticate(ResponseApdu(card.initialize_update(init, KEYS, COUNTER), SW.OK), 0x33)

    def setup() -> None:
        card.initialize_update(init, KEYS, COUNTER)
        card.external_authenticate(ea)

    setup()
    assert card.authenticated

    key = KEYS.mac
    message = bytes(32)  # label(11) || constant || 00 || L(2) || i || context(16) is exactly 32 bytes

    def floor() -> None:
        for _ in range(SETUP_CMACS):
            mac = CMAC(algorithms.AES(key))
            mac.update(message)
            mac.finalize()

    number = 100 if quick else 1000
    return compared(
        "scp03.card_session_setup",
        setup,
        floor,
        (
            "card side of INITIALIZE UPDATE + EXTERNAL AUTHENTICATE (AES-128, S8, level 33) vs "
            f"{SETUP_CMACS} raw pyca AES-CMACs"
        ),
        aim="ratio <= 2.0",
        repeat=5 if quick else 9,
        number=number,
    )


def _messaging_figure(quick: bool) -> Figure:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(KEYS, host_challenge=bytes(range(8)))
    data = card.initialize_update(host.initialize_update(), KEYS, COUNTER)
    card.external_authenticate(host.authenticate(ResponseApdu(data, SW.OK), 0x33))
    cmd = CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(range(200)))

    def wrap_unwrap() -> None:
        card.unwrap(host.wrap(cmd))

    wrap_unwrap()

    enc_key, mac_key = bytes(16), bytes(range(16))
    header = bytes.fromhex("84E29000E0") + bytes(16)
    padded = bytes(208)

    def floor() -> None:
        # host: ICV, CBC encrypt, CMAC
        icv = Cipher(algorithms.AES(enc_key), modes.ECB()).encryptor().update(bytes(16))
        enc = Cipher(algorithms.AES(enc_key), modes.CBC(icv)).encryptor()
        ct = enc.update(padded) + enc.finalize()
        mac = CMAC(algorithms.AES(mac_key))
        mac.update(header + ct)
        tag = mac.finalize()
        # card: CMAC verify, ICV, CBC decrypt
        check = CMAC(algorithms.AES(mac_key))
        check.update(header + ct)
        check.finalize()
        icv2 = Cipher(algorithms.AES(enc_key), modes.ECB()).encryptor().update(bytes(16))
        dec = Cipher(algorithms.AES(enc_key), modes.CBC(icv2)).decryptor()
        dec.update(ct)
        dec.finalize()
        del tag

    number = 100 if quick else 1000
    return compared(
        "scp03.wrap_unwrap_200B_level33",
        wrap_unwrap,
        floor,
        (
            "host wrap + card unwrap of a 200-byte command at level 33 vs raw ECB+CBC+CMAC per side "
            "(the floor keys each primitive afresh; a session keeps its keyed CMAC and ECB state)"
        ),
        aim="ratio <= 2.0",
        repeat=5 if quick else 9,
        number=number,
    )


def run(quick: bool) -> list[Figure]:
    return [_setup_figure(quick), _messaging_figure(quick)]
