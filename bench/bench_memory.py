"""Memory per idle device: N devices opened in one process, resident memory growth divided by N.

Baseline: the resident memory of an empty Python process (``python -c pass`` measuring itself), i.e. what
a device would cost at the very least if each ran as a process of its own. A second figure serves each
device at its own TCP endpoint (event-loop thread + worker threads + listening socket), against the same
baseline. Stores are created first, in another process, so only opening (and serving) is measured.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import PAGE, Figure


def empty_process_rss() -> int:
    """Resident memory of a bare interpreter, measured by itself (median of 3)."""
    code = f"print(int(open('/proc/self/statm').read().split()[1]) * {PAGE})"
    values = sorted(
        int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    )
    return values[1]


def _create_stores(folder: Path, count: int) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tenantcard.keyvault import FileKeyVault\n"
        "from tenantcard.device.provision import create_device_store, dev_spec\n"
        "folder, n = Path(sys.argv[1]), int(sys.argv[2])\n"
        "vault = FileKeyVault(folder / 'vault')\n"
        "for i in range(n):\n"
        "    create_device_store(folder / f'd{i}.db', dev_spec(4), vault)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(folder), str(count)], check=True)


def _measure(folder: Path, count: int, serve: bool) -> int:
    """Bytes of resident memory per opened (and, with ``serve``, served) device, in a fresh process."""
    code = (
        "import gc, json, sys\n"
        "from pathlib import Path\n"
        "from bench.common import rss_bytes\n"
        "from tenantcard.keyvault import FileKeyVault\n"
        "from tenantcard.device.os import Device\n"
        "from tenantcard.transport.tcp_server import DeviceServerThread\n"
        "from tenantcard.transport.tcp_client import TcpConnection\n"
        "folder, n, serve = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1'\n"
        "vault = FileKeyVault(folder / 'vault')\n"
        "select = bytes.fromhex('00A4040008A000000151000000')\n"
        "def warm(i):\n"
        "    d = Device.open(folder / f'd{i}.db', vault)\n"
        "    c = d.connect(); c.power_on(); c.execute(select); c.power_off()\n"
        "    return d\n"
        "first = warm(0)\n"  # imports, caches and one device warmed up before the first reading
        "held = [first]\n"
        "if serve:\n"
        "    s = DeviceServerThread(first).start()\n"
        "    TcpConnection(s.host, s.port).close()\n"
        "    held.append(s)\n"
        "gc.collect()\n"
        "before = rss_bytes()\n"
        "for i in range(1, n + 1):\n"
        "    d = warm(i)\n"
        "    held.append(d)\n"
        "    if serve:\n"
        "        s = DeviceServerThread(d).start()\n"
        "        TcpConnection(s.host, s.port).close()\n"
        "        held.append(s)\n"
        "gc.collect()\n"
        "print(json.dumps((rss_bytes() - before) // n))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(count), "1" if serve else "0"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout
    value: int = json.loads(out)
    return value


def run(quick: bool) -> list[Figure]:
    count = 10 if quick else 40
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _create_stores(folder, count + 1)
        opened = _measure(folder, count, serve=False)
        served = _measure(folder, count, serve=True)
    baseline = empty_process_rss()
    mib = 1024 * 1024
    return [
        Figure(
            name="memory.per_idle_device",
            value=opened / mib,
            baseline=baseline / mib,
            unit="MiB",
            description=(
                f"resident memory per idle opened device (4 containers; mean over {count} devices in one "
                "process) vs the resident memory of an empty Python process"
            ),
            aim="ratio <= 0.1",
        ),
        Figure(
            name="memory.per_idle_served_device",
            value=served / mib,
            baseline=baseline / mib,
            unit="MiB",
            description=(
                f"resident memory per idle device served at its own TCP endpoint (event-loop thread, 4 worker "
                f"threads; mean over {count}) vs the resident memory of an empty Python process"
            ),
            aim="ratio <= 0.25",
        ),
    ]
