"""The test machine's PC/SC set-up: the vpcd reader slots (which reader name a port shows up as, one claim per
port) and how OpenSC is configured to read the cards behind them.

``scripts/services`` names entry ``i`` "tenantcard vpcd i"; vpcd gives each entry two slots, ports P and
P+1, which PC/SC names "<entry> 00 00" and "<entry> 00 01". A slot holds one card at a time, so a test
claims its ports with an advisory file lock that other test processes on this machine respect.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO_ROOT
from tests.support.services import vpcd_ports

OPENSC_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
# No file cache (each run reads the cards as they are now); one PKCS#11 slot per reader, enough for the
# machine's 12 vpcd slots (the default of 4 virtual slots per reader, 16 in all, covers only 4 readers).
OPENSC_CONF = """app default {
  framework pkcs15 {
    use_file_caching = no;
  }
}
app opensc-pkcs11 {
  pkcs11 {
    max_virtual_slots = 64;
    slots_per_card = 1;
  }
}
"""


def reader_name(port: int) -> str:
    k = port - vpcd_ports()[0]
    return f"tenantcard vpcd {k // 2} 00 {k % 2:02d}"


@contextlib.contextmanager
def claim_ports(count: int) -> Iterator[list[int]]:
    """``count`` vpcd ports that no other test process holds, for the duration of the block."""
    lock_dir = REPO_ROOT / ".run" / "vpcd-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, int]] = []
    try:
        for port in vpcd_ports():
            if len(held) == count:
                break
            fd = os.open(Path(lock_dir, str(port)), os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((port, fd))
        if len(held) < count:
            raise RuntimeError(f"only {len(held)} of {count} vpcd ports are free")
        yield [port for port, _ in held]
    finally:
        for _, fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
