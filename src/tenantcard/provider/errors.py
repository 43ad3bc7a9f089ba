"""Errors of the provider layer (SDK, keystore, operator client). Messages never carry keys or passphrases."""

from __future__ import annotations


class ProviderError(Exception):
    """Base of the provider layer's errors; the CLI prints the message as one line."""


class KeystoreError(ProviderError):
    """The keystore cannot be created, opened or written (wrong passphrase, corrupted file, token error)."""


class UnknownContainerError(KeystoreError):
    """The keystore holds no keys for this container."""


class OperatorApiError(ProviderError):
    """The operator answered with an error (``status`` HTTP code, ``code`` its stable error code) or could not
    be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"operator: {message} ({code}, HTTP {status})" if status else message)


class OwnershipError(ProviderError):
    """Taking ownership or rotating keys failed: the bundle is expired or already used, the device refused the
    initial keys, or a key check value did not match."""


class BundleError(ProviderError):
    """An authorization bundle that does not parse."""
