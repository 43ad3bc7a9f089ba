"""The software secure element: card OS, issuer security domain, containers, sealed store."""

from tenantcard.device.errors import DeviceError, StoreError
from tenantcard.device.os import ATR, CardSession, Device
from tenantcard.device.provision import ContainerSpec, DeviceSpec, create_device_store, dev_spec

__all__ = [
    "ATR",
    "CardSession",
    "ContainerSpec",
    "Device",
    "DeviceError",
    "DeviceSpec",
    "StoreError",
    "create_device_store",
    "dev_spec",
]
