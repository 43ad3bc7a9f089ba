"""The software secure element: card OS, issuer security domain, containers, sealed store, key vaults."""

from tenantcard.device.errors import DeviceError, KeyVaultError, StoreError
from tenantcard.device.keyvault import FileKeyVault, KeyVault, Pkcs11KeyVault, open_vault
from tenantcard.device.os import ATR, CardSession, Device
from tenantcard.device.provision import ContainerSpec, DeviceSpec, create_device_store, dev_spec

__all__ = [
    "ATR",
    "CardSession",
    "ContainerSpec",
    "Device",
    "DeviceError",
    "DeviceSpec",
    "FileKeyVault",
    "KeyVault",
    "KeyVaultError",
    "Pkcs11KeyVault",
    "StoreError",
    "create_device_store",
    "dev_spec",
    "open_vault",
]
