"""Injectable time and randomness for the identity provider's services."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

Clock = Callable[[], float]
RandomBytes = Callable[[int], bytes]

system_clock: Clock = time.time
system_random: RandomBytes = secrets.token_bytes
