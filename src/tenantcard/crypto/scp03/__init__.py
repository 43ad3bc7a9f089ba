"""SCP03 (GlobalPlatform Card Specification 2.3.1 Amendment D): key sets, derivation, host and card sides."""

from tenantcard.crypto.errors import CryptoError, KeyDataError, SecureChannelError
from tenantcard.crypto.scp03.card import Scp03Card
from tenantcard.crypto.scp03.host import Scp03Host
from tenantcard.crypto.scp03.kdf import DerivationConstant, SessionKeys, derive, session_keys
from tenantcard.crypto.scp03.keys import (
    KeyComponent,
    PutKeyCommand,
    StaticKeys,
    decrypt_key_data,
    encrypt_key_data,
    kcv,
    put_key_response,
)

__all__ = [
    "CryptoError",
    "DerivationConstant",
    "KeyComponent",
    "KeyDataError",
    "PutKeyCommand",
    "Scp03Card",
    "Scp03Host",
    "SecureChannelError",
    "SessionKeys",
    "StaticKeys",
    "decrypt_key_data",
    "derive",
    "encrypt_key_data",
    "kcv",
    "put_key_response",
    "session_keys",
]
