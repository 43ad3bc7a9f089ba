"""Pairwise subject identifiers (OpenID Connect Core 1.0 §8.1)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, hmac


def pairwise_subject(secret: bytes, sector_identifier: str, device_id: str) -> str:
    """``sub`` = base64url(HMAC-SHA256(secret, sector_identifier || 0x00 || device_id)), unpadded.

    Stable for one client sector, unlinkable across sectors without the secret (§8.1's "calculated" method).
    The NUL separator keeps (sector, device) pairs from colliding (a host name never contains NUL).
    """
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(sector_identifier.encode() + b"\x00" + device_id.encode())
    return base64.urlsafe_b64encode(mac.finalize()).rstrip(b"=").decode()
