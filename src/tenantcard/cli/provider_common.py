"""What the provider-side commands share (``tenantcard provider`` and its ``programs`` group): the keystore's
variables and passphrase, the access-rule option, and how an expected failure is reported."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from tenantcard.wire.tenant import Access

KEYSTORE_ENV = "TENANTCARD_KEYSTORE"
PASSPHRASE_ENV = "TENANTCARD_KEYSTORE_PASSPHRASE"
ACCESS_NAMES = {
    "public": Access.PUBLIC,
    "holder": Access.HOLDER,
    "provider": Access.PROVIDER,
    "holder-or-provider": Access.HOLDER_OR_PROVIDER,
}

F = TypeVar("F", bound=Callable[..., Any])


def access_option(default: str) -> Callable[[F], F]:
    """``--access``: who may use what the command creates (an access rule, DESIGN.md "Protocol choices")."""
    return click.option(
        "--access",
        type=click.Choice(list(ACCESS_NAMES)),
        default=default,
        show_default=True,
        help="Who may use it: the holder (PIN verified), you (your secure channel), either, or anyone.",
    )


def passphrase(*, new: bool = False) -> str:
    """The keystore passphrase: ``$TENANTCARD_KEYSTORE_PASSPHRASE``, else a prompt (twice for a new keystore)."""
    prompt = "new keystore passphrase" if new else "keystore passphrase"
    return os.environ.get(PASSPHRASE_ENV) or click.prompt(prompt, hide_input=True, confirmation_prompt=new, err=True)


def open_file_keystore(path: Path) -> Any:
    from tenantcard.provider.keystore import FileKeystore

    return FileKeystore.open(path, passphrase())


@contextlib.contextmanager
def expected_errors(*more: type[Exception]) -> Iterator[None]:
    """Every expected failure (and those of the ``more`` types) becomes one line on stderr and exit status 1,
    never a traceback."""
    from tenantcard.client.errors import ClientError
    from tenantcard.crypto.errors import CryptoError
    from tenantcard.provider.errors import ProviderError
    from tenantcard.transport.base import TransportError
    from tenantcard.wire.errors import WireError

    expected: tuple[type[Exception], ...] = (
        ClientError,
        CryptoError,
        ProviderError,
        TransportError,
        WireError,
        ValueError,
        *more,
    )
    try:
        yield
    except expected as exc:
        raise click.ClickException(str(exc) or type(exc).__name__) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or type(exc).__name__}{where}") from None


def fails_cleanly(fn: F) -> F:
    """``fn`` under :func:`expected_errors`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with expected_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
