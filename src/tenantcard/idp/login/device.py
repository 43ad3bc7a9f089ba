"""Device login: authenticate the secure device at a network address by its identity key.

The login hint names the device: a ``tcp://host:port`` address, or a handle the operator's directory resolves
to one. The identity provider connects, SELECTs the issuer security domain, reads the device id and the
certificate chain (GET DATA), sends a fresh challenge (INTERNAL AUTHENTICATE: its time, then random bytes), verifies the signature
and the chain up to the operator CA, then asks the operator whether the device is still active.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Callable

from cryptography import x509

from tenantcard.client.errors import ClientError
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.identity import IdentityError, login_challenge, verify_device_auth
from tenantcard.idp.clock import Clock, RandomBytes
from tenantcard.idp.login.base import AuthenticatedSubject, DeviceProof, LoginContext, LoginError, LoginFailure
from tenantcard.idp.login.directory import DeviceDirectory, DeviceStatus, DirectoryError, UnknownDeviceError
from tenantcard.transport.base import Connection, TransportError
from tenantcard.transport.tcp_client import AddressError, connect, parse_address
from tenantcard.wire.errors import WireError

AMR_HARDWARE_KEY = "hwk"  # RFC 8176 §2: proof-of-possession of a hardware-secured key
_HANDLE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Connector = Callable[[str], Connection]


def tcp_connector(timeout: float) -> Connector:
    def _connect(address: str) -> Connection:
        return connect(address, timeout=timeout)

    return _connect


class DeviceLoginMethod:
    """The ``device`` login method. ``allow_direct_addresses`` lets a hint carry an address (not only a handle
    the operator resolves); turn it off to keep the identity provider from dialling addresses it is handed."""

    def __init__(
        self,
        directory: DeviceDirectory,
        root_ca: x509.Certificate,
        *,
        connector: Connector,
        clock: Clock,
        random_bytes: RandomBytes,
        allow_direct_addresses: bool = True,
    ) -> None:
        self._directory = directory
        self._root = root_ca
        self._connect = connector
        self._clock = clock
        self._random = random_bytes
        self._direct = allow_direct_addresses

    @property
    def name(self) -> str:
        return "device"

    def _address(self, hint: str | None) -> str:
        if not hint or len(hint) > 300:
            raise LoginError(LoginFailure.BAD_HINT, "login_hint must name a device address or handle")
        if hint.lower().startswith("tcp://"):
            if not self._direct:
                raise LoginError(LoginFailure.BAD_HINT, "direct device addresses are not accepted here")
            try:
                parse_address(hint)
            except AddressError as exc:
                raise LoginError(LoginFailure.BAD_HINT, "login_hint is not a valid device address") from exc
            return hint
        if not _HANDLE.match(hint):
            raise LoginError(LoginFailure.BAD_HINT, "login_hint is not a valid device handle")
        try:
            address = self._directory.resolve(hint)
            parse_address(address)
        except UnknownDeviceError as exc:
            raise LoginError(LoginFailure.UNKNOWN_HANDLE, "no device is registered under that handle") from exc
        except DirectoryError as exc:
            raise LoginError(LoginFailure.DIRECTORY_UNAVAILABLE, "the device directory did not answer") from exc
        except AddressError as exc:
            raise LoginError(LoginFailure.UNREACHABLE, "the directory holds no usable address") from exc
        return address

    def authenticate(self, context: LoginContext) -> AuthenticatedSubject:
        address = self._address(context.login_hint)
        # The challenge opens with its time, so the operator can tell a fresh proof from an old one.
        challenge = login_challenge(self._clock(), self._random)
        try:
            connection = self._connect(address)
        except (TransportError, OSError) as exc:
            raise LoginError(LoginFailure.UNREACHABLE, "the device did not answer at its address") from exc
        try:
            isd = IsdSession(connection)
            isd.select()
            device_id = isd.get_device_id()
            chain = isd.get_certificates()
            signature = isd.internal_authenticate(challenge)
        except (TransportError, OSError) as exc:
            raise LoginError(LoginFailure.UNREACHABLE, "the connection to the device failed") from exc
        except (ClientError, WireError, ValueError) as exc:  # a status word or a malformed answer
            raise LoginError(LoginFailure.AUTHENTICATION_FAILED, "the device answered the protocol wrongly") from exc
        finally:
            with contextlib.suppress(TransportError, OSError):
                connection.close()
        try:
            now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
            verify_device_auth(list(chain), self._root, device_id, challenge, signature, now=now)
        except IdentityError as exc:
            raise LoginError(LoginFailure.AUTHENTICATION_FAILED, "the device did not prove its identity") from exc
        device_hex = device_id.hex()
        try:
            status = self._directory.status(device_hex)
        except UnknownDeviceError as exc:
            raise LoginError(LoginFailure.NOT_ACTIVE, "the operator does not know this device") from exc
        except DirectoryError as exc:
            raise LoginError(LoginFailure.DIRECTORY_UNAVAILABLE, "the device directory did not answer") from exc
        if status is not DeviceStatus.ACTIVE:
            raise LoginError(LoginFailure.NOT_ACTIVE, f"the device is {status.value}")
        return AuthenticatedSubject(
            device_id=device_hex,
            device_address=address,
            amr=(AMR_HARDWARE_KEY,),
            auth_time=int(self._clock()),
            proof=DeviceProof(challenge, signature),
        )
