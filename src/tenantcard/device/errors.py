"""Errors of the device layer. Messages name the failure, never key material, PINs or object contents."""

from __future__ import annotations


class DeviceError(Exception):
    """Base of every device-side error outside APDU processing (which answers status words instead)."""


class StoreError(DeviceError):
    """The sealed store cannot be created or opened (exists already, wrong schema, corrupted, wrong vault)."""
