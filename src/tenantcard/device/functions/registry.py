"""The container functions every device loads, in dispatch order (the first whose ``handles(ins)`` is true
gets the command). One line per function: a callable that returns a ``ContainerFunction``."""

from __future__ import annotations

from collections.abc import Callable

from tenantcard.device.functions.base import ContainerFunction
from tenantcard.device.functions.challenge import ChallengeFunction
from tenantcard.device.functions.otp import OtpFunction
from tenantcard.device.functions.piv import PivFunction
from tenantcard.device.functions.pki import PkiFunction
from tenantcard.device.functions.programs import ProgramsFunction

FUNCTION_FACTORIES: list[Callable[[], ContainerFunction]] = [
    OtpFunction,
    ChallengeFunction,
    PkiFunction,
    PivFunction,
    ProgramsFunction,
]


def load_functions() -> list[ContainerFunction]:
    """Fresh instances of every registered function."""
    return [factory() for factory in FUNCTION_FACTORIES]
