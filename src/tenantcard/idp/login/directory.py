"""The operator's device directory as the identity provider sees it: resolve a handle to a network address,
ask whether a device is still active. An HTTP implementation talks to the operator's REST API."""

from __future__ import annotations

import enum
import re
from typing import Protocol, runtime_checkable
from urllib.parse import quote

import httpx

from tenantcard.crypto.identity import is_device_id_hex
from tenantcard.idp.login.base import DeviceProof


class DeviceStatus(enum.Enum):
    ACTIVE = "active"
    LOST = "lost"
    RETIRED = "retired"


class DirectoryError(Exception):
    """The directory could not answer (operator unreachable, unexpected answer)."""


class UnknownDeviceError(DirectoryError):
    """The directory knows no device by that handle or id."""


class DeviceDirectory(Protocol):
    def resolve(self, handle: str) -> str:
        """The network address (``tcp://host:port``) registered for a device handle."""
        ...

    def status(self, device_id: str) -> DeviceStatus: ...


@runtime_checkable
class PointerRegistry(Protocol):
    """Where the identity provider records the pointers it hands out (the operator's ``idp_pointer``), with the
    device's answer to the login challenge as proof that it authenticated the device."""

    def register_pointer(self, device_id: str, pointer: str, proof: DeviceProof) -> None: ...


_HANDLE = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")  # a device id or a pointer (pairwise subs are base64url)


class HttpDeviceDirectory:
    """Asks the operator service over HTTP with the identity-provider credential the operator issued
    (``tenantcard operator idp register``), which reaches only the ``/v1/idp/...`` routes:
    ``POST {base}/v1/idp/resolve`` answers the device a handle (device id or pointer) names, with its
    registered ``address`` (kept current by the device's authenticated check-in) and its ``status``.
    """

    def __init__(
        self, base_url: str, token: str | None = None, timeout: float = 5.0, client: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, path: str, body: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise DirectoryError(f"operator unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise UnknownDeviceError("unknown device")
        return response

    def _device(self, handle: str) -> dict[str, object]:
        if not _HANDLE.match(handle):
            raise UnknownDeviceError("not a device handle")
        response = self._call("/v1/idp/resolve", {"handle": handle})
        if response.status_code != 200:
            raise DirectoryError(f"operator answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise DirectoryError("operator answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise DirectoryError("operator answered an unexpected document")
        return body

    def resolve(self, handle: str) -> str:
        address = self._device(handle).get("address")
        if not isinstance(address, str) or not address:
            raise UnknownDeviceError("the device has not checked in an address")
        return address if "://" in address else "tcp://" + address

    def status(self, device_id: str) -> DeviceStatus:
        if not is_device_id_hex(device_id):
            raise UnknownDeviceError("not a device id")
        value = self._device(device_id).get("status")
        try:
            return DeviceStatus(value)
        except ValueError as exc:
            raise DirectoryError("operator answered an unknown device status") from exc

    def register_pointer(self, device_id: str, pointer: str, proof: DeviceProof) -> None:
        """``POST {base}/v1/idp/devices/{device_id}/pointers``: the operator checks the device's signature over
        the login challenge, then accepts ``pointer`` as the ``idp_pointer`` naming this device (phase 1: a
        provider asks for a container by it)."""
        if not is_device_id_hex(device_id):
            raise UnknownDeviceError("not a device id")
        body = {"pointer": pointer, "challenge": proof.challenge.hex(), "signature": proof.signature.hex()}
        response = self._call(f"/v1/idp/devices/{quote(device_id.lower(), safe='')}/pointers", body)
        if response.status_code not in (200, 201, 204):
            raise DirectoryError(f"operator answered HTTP {response.status_code}{_error_code(response)}")

    def close(self) -> None:
        self._client.close()


def _error_code(response: httpx.Response) -> str:
    """`` (code)`` of an operator error answer, for logs; empty when there is none."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f" ({code})" if isinstance(code, str) and code.isidentifier() else ""


def fetch_operator_ca(base_url: str, timeout: float = 5.0) -> bytes:
    """The operator CA certificate (PEM) from ``GET {base}/v1/ca``."""
    try:
        response = httpx.get(base_url.rstrip("/") + "/v1/ca", timeout=timeout)
        response.raise_for_status()
        pem = response.json()["certificate_pem"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DirectoryError("could not fetch the operator CA certificate") from exc
    if not isinstance(pem, str):
        raise DirectoryError("operator answered no CA certificate")
    return pem.encode()
