"""Errors of the identity provider's services (mapped once to HTTP in ``tenantcard.idp.oidc.routes``)."""

from __future__ import annotations


class IdpError(Exception):
    """Base of the identity provider's own errors. Messages never carry secrets."""


class ClientRegistrationError(IdpError):
    """A client registration was refused (bad redirect URI, missing sector identifier)."""


class UnknownClientError(IdpError):
    """No client with that id."""
