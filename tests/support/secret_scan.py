"""Invariant 7 over the whole test suite: no key, PIN or credential the tests use appears in a log line, an
exception message or an HTTP response that is not meant to carry it. No test has to cooperate.

At session start this plugin

(a) wraps the constructors and verbs that carry secrets, to record each value (a ``SecretRegistry``): the
    SCP03 static keys (``StaticKeys``: ENC, MAC, DEK) and session keys (``SessionKeys``), provider and holder
    API credentials as the operator issues them (``Credentials.issue``) and the operator's admin token, IdP
    client secrets (``NewClient``, and ``OidcClient``'s argument), keystore passphrases
    (``FileKeystore._derive``), and the PINs and PUKs given to the client's PIN verbs (``ContainerSession``,
    ``PivHolder``, ``PivProvisioner``);
(b) attaches a handler to the root logger and lets every ``tenantcard`` logger through at every level; each
    record is formatted with its traceback;
(c) sets ``TENANTCARD_LOG_DIR`` so that ``tenantcard`` processes started by the tests write their log records
    there too (tenantcard.cli.main), and collects, at the end, every ``*.log`` file under that folder and under
    pytest's temporary base folder (the servers' stderr files);
(d) adds a response hook to every ``httpx.Client`` / ``httpx.AsyncClient`` (FastAPI's TestClient included)
    recording status, headers and body, except the responses that are meant to carry a secret
    (``MEANT_TO_CARRY``);
(e) records the message of every exception of tenantcard's own exception classes.

At session end it searches everything recorded for every secret (raw, hex in both cases, base64 and
base64url with and without padding), and fails the session, naming where each was found, which kind of secret
and which test created it, never the secret. Under pytest-xdist each worker scans its own records and the
controller collects the findings (names only) from ``TENANTCARD_SECRET_SCAN_DIR``.

Limits, on purpose: values shorter than ``MIN_LENGTH`` characters (4-digit PINs) and values of fewer than
four distinct bytes (``bytes(16)``, ``b"\\x11" * 16``) are recorded but not searched: they cannot be told from
other numbers and padding. The public GlobalPlatform test key 40..4F is not a secret.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import pkgutil
import re
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MIN_LENGTH = 6
WINDOW = 8
MAX_TEXT = 1 << 20
LOG_DIR_ENV = "TENANTCARD_LOG_DIR"
FINDINGS_ENV = "TENANTCARD_SECRET_SCAN_DIR"
PUBLIC_VALUES = frozenset({bytes(range(0x40, 0x50))})  # GP 2.3.1 test key: published in every GP tool's docs

# (method, path regex) of the HTTP responses whose job is to hand a secret over, once, to its owner.
MEANT_TO_CARRY: tuple[tuple[str, str], ...] = (
    ("POST", r"/admin/providers$"),  # provider registration: its API credential, shown once
    ("POST", r"/admin/providers/[^/]+/credential$"),  # provider credential rotation: the new credential
    ("POST", r"/admin/holders$"),  # holder creation: its credential, shown once
    ("POST", r"/admin/idps$"),  # identity-provider registration: its API credential, shown once
    ("POST", r"/admin/idps/[^/]+/credential$"),  # identity-provider credential rotation: the new credential
    ("POST", r"/authorizations$"),  # placement: the bundle with the one-time initial keys
    ("GET", r"/authorizations/[^/]+$"),  # the same bundle, until the provider reports ownership
    ("POST", r"/token$"),  # the IdP's token endpoint: the tokens it issues
    ("POST", r"/clients$"),  # IdP client registration: the client secret, shown once
)
_MEANT = [(m, re.compile(p)) for m, p in MEANT_TO_CARRY]

# Packages whose exception classes are hooked (imported at session start; a module that fails to import is
# skipped, it has nothing to hook yet).
EXCEPTION_PACKAGES = (
    "tenantcard.wire",
    "tenantcard.crypto",
    "tenantcard.device",
    "tenantcard.client",
    "tenantcard.transport",
    "tenantcard.provider",
    "tenantcard.operator",
    "tenantcard.idp",
    "tenantcard.keyvault",
)


# ------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Secret:
    kind: str  # e.g. "StaticKeys.enc", "PIN", "provider credential"
    origin: str  # the test (node id) that was running when the value was recorded


@dataclass(frozen=True)
class Finding:
    where: str  # e.g. "log record tenantcard.device.os (test ...)", "HTTP GET /me -> 200"
    kind: str
    origin: str
    encoding: str

    def line(self) -> str:
        return f"{self.kind} ({self.encoding}, created in {self.origin}) found in {self.where}"


def encodings(value: bytes | str) -> Iterator[tuple[str, str]]:
    """(encoding name, text) of each form the value could take in a log or a body."""
    if isinstance(value, str):
        yield "raw", value
        raw = value.encode()
    else:
        raw = value
        try:
            text = value.decode("ascii")
            if text.isprintable():
                yield "raw", text
        except UnicodeDecodeError:
            pass
    yield "hex", raw.hex()
    yield "HEX", raw.hex().upper()
    b64 = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    for name, enc in (("base64", b64), ("base64url", url)):
        yield name, enc
        if enc.endswith("="):
            yield name, enc.rstrip("=")


def searchable(value: bytes | str) -> bool:
    raw = value.encode() if isinstance(value, str) else value
    return len(raw) >= MIN_LENGTH and len(set(raw)) >= 4 and raw not in PUBLIC_VALUES


class SecretRegistry:
    """Every secret value recorded, with the first kind and test that recorded it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[bytes | str, Secret] = {}
        self.unsearchable = 0

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: object, kind: str, origin: str) -> None:
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if not isinstance(value, bytes | str) or not value:
            return
        if not searchable(value):
            self.unsearchable += 1
            return
        with self._lock:
            self._values.setdefault(value, Secret(kind, origin))

    def needles(self) -> dict[str, tuple[Secret, str]]:
        out: dict[str, tuple[Secret, str]] = {}
        with self._lock:
            items = list(self._values.items())
        for value, secret in items:
            for name, text in encodings(value):
                if len(text) >= MIN_LENGTH:
                    out.setdefault(text, (secret, name))
        return out


class Records:
    """What the suite produced that must not carry a secret: (where, text), deduplicated."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, where: str, text: str) -> None:
        if not text:
            return
        text = text[:MAX_TEXT]
        with self._lock:
            self._texts.setdefault(text, where)

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(where, text) for text, where in self._texts.items()]


def _boundary_ok(text: str, start: int, end: int, needle: str) -> bool:
    """Short raw values (PINs) count only as a whole token, not inside a longer number or word."""
    if len(needle) >= WINDOW:
        return True
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def scan(records: Iterable[tuple[str, str]], needles: dict[str, tuple[Secret, str]]) -> list[Finding]:
    """Every (place, secret) pair where a needle occurs in a record. Indexed by each needle's first
    ``WINDOW`` (or all, when shorter) characters, so the cost grows with the text, not with the needles."""
    index: dict[int, dict[str, list[str]]] = {}
    for needle in needles:
        k = min(len(needle), WINDOW)
        index.setdefault(k, {}).setdefault(needle[:k], []).append(needle)
    found: dict[tuple[str, str, str], Finding] = {}
    for where, text in records:
        for k, heads in index.items():
            if len(text) < k:
                continue
            windows = {text[i : i + k] for i in range(len(text) - k + 1)}
            for head in windows & heads.keys():
                for needle in heads[head]:
                    pos = text.find(needle)
                    while pos >= 0:
                        if _boundary_ok(text, pos, pos + len(needle), needle):
                            secret, encoding = needles[needle]
                            found.setdefault(
                                (where, secret.kind, secret.origin),
                                Finding(where, secret.kind, secret.origin, encoding),
                            )
                            break
                        pos = text.find(needle, pos + 1)
    return sorted(found.values(), key=lambda f: (f.where, f.kind))


# ------------------------------------------------------------------------------------------ collection


class _State:
    def __init__(self) -> None:
        self.registry = SecretRegistry()
        self.records = Records()
        self.current = "(collection)"
        self.hooked: list[str] = []
        self.undo: list[Callable[[], None]] = []
        self.log_dirs: list[Path] = []


STATE = _State()


def record_secret(value: object, kind: str) -> None:
    STATE.registry.add(value, kind, STATE.current)


def _patch(owner: Any, name: str, make: Callable[[Any], Any], label: str) -> None:
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None:
        return
    setattr(owner, name, make(original))
    STATE.hooked.append(label)

    def undo() -> None:
        setattr(owner, name, original)

    STATE.undo.append(undo)


def _import(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except Exception:
        return None


def _wrap_post_init(fields: tuple[str, ...], kind: str) -> Callable[[Any], Any]:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(original)
        def __post_init__(self: Any) -> None:
            original(self)
            for f in fields:
                record_secret(getattr(self, f, None), f"{kind}.{f}")

        return __post_init__

    return make


def _wrap_init_fields(fields: tuple[str, ...], kind: str) -> Callable[[Any], Any]:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            for f in fields:
                record_secret(getattr(self, f, None), kind)

        return __init__

    return make


def _wrap_args(params: tuple[str, ...], kind: str) -> Callable[[Any], Any]:
    """Record the named parameters of a function or method before it runs."""

    def make(original: Any) -> Any:
        is_static = isinstance(original, staticmethod)
        func = original.__func__ if is_static else original
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind_partial(*args, **kwargs)
                for p in params:
                    if p in bound.arguments:
                        record_secret(bound.arguments[p], kind)
            except TypeError:
                pass
            return func(*args, **kwargs)

        return staticmethod(wrapper) if is_static else wrapper

    return make


def _wrap_result(kind: str, also_after: str = "") -> Callable[[Any], Any]:
    """Record the returned value (and the part after ``also_after``: a credential's secret half)."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            record_secret(result, kind)
            if also_after and isinstance(result, str) and also_after in result:
                record_secret(result.split(also_after, 1)[1], kind)
            return result

        return wrapper

    return make


def hook_secret_sources() -> None:
    keys = _import("tenantcard.crypto.scp03.keys")
    if keys is not None:
        _patch(keys.StaticKeys, "__post_init__", _wrap_post_init(("enc", "mac", "dek"), "StaticKeys"), "StaticKeys")
    kdf = _import("tenantcard.crypto.scp03.kdf")
    if kdf is not None and hasattr(kdf, "SessionKeys"):
        cls = kdf.SessionKeys
        if "__post_init__" in cls.__dict__:
            _patch(cls, "__post_init__", _wrap_post_init(("enc", "mac", "rmac"), "SessionKeys"), "SessionKeys")
        else:
            _patch(cls, "__init__", _wrap_init_fields(("enc", "mac", "rmac"), "SessionKeys"), "SessionKeys")
    creds = _import("tenantcard.operator.services.credentials")
    if creds is not None and hasattr(creds, "Credentials"):
        _patch(creds.Credentials, "issue", _wrap_result("operator API credential", "."), "Credentials.issue")
    auth = _import("tenantcard.operator.api.auth")
    if auth is not None and hasattr(auth, "Authenticator"):
        _patch(auth.Authenticator, "__init__", _wrap_init_fields(("_admin",), "operator admin token"), "admin token")
    clients = _import("tenantcard.idp.oidc.clients")
    if clients is not None and hasattr(clients, "NewClient"):
        _patch(clients.NewClient, "__init__", _wrap_init_fields(("client_secret",), "IdP client secret"), "NewClient")
    oidc = _import("tenantcard.provider.oidc")
    if oidc is not None and hasattr(oidc, "OidcClient"):
        _patch(oidc.OidcClient, "__init__", _wrap_args(("client_secret",), "IdP client secret"), "OidcClient")
    keystore = _import("tenantcard.provider.keystore")
    if keystore is not None and hasattr(keystore, "FileKeystore"):
        _patch(keystore.FileKeystore, "_derive", _wrap_args(("passphrase",), "keystore passphrase"), "passphrase")
    container = _import("tenantcard.client.container")
    if container is not None:
        cs = container.ContainerSession
        pin_verbs: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("verify_pin", ("pin",)),
            ("change_pin", ("old", "new")),
            ("set_pin", ("pin",)),
            ("unblock_pin", ("new",)),
        )
        for verb, params in pin_verbs:
            _patch(cs, verb, _wrap_args(params, "PIN"), f"ContainerSession.{verb}")
    piv = _import("tenantcard.client.piv")
    if piv is not None:
        for cls_name in ("PivHolder", "PivProvisioner"):
            cls = getattr(piv, cls_name, None)
            if cls is None:
                continue
            for verb, fn in list(cls.__dict__.items()):
                if not callable(fn) or verb.startswith("_"):
                    continue
                params = tuple(
                    p for p in inspect.signature(fn).parameters if p in ("pin", "old", "new", "puk", "new_pin")
                )
                if params:
                    _patch(cls, verb, _wrap_args(params, "PIN"), f"{cls_name}.{verb}")


def hook_exceptions() -> None:
    """Record the message of each exception of tenantcard's own classes (the roots of its hierarchies)."""
    for package in EXCEPTION_PACKAGES:
        pkg = _import(package)
        if pkg is None or not hasattr(pkg, "__path__"):
            continue
        try:
            names = [info.name for info in pkgutil.walk_packages(pkg.__path__, package + ".", onerror=lambda _: None)]
        except Exception:
            names = []
        for name in names:
            if ".migrations" not in name and not name.endswith("__main__"):
                _import(name)
    roots: set[type[BaseException]] = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("tenantcard") or module is None:
            continue
        for obj in list(vars(module).values()):
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("tenantcard")
                and not any(b.__module__.startswith("tenantcard") for b in obj.__mro__[1:])
            ):
                roots.add(obj)
    for cls in roots:
        original = cls.__init__

        def make(orig: Any, label: str) -> Any:
            def __init__(self: BaseException, *args: Any, **kwargs: Any) -> None:
                orig(self, *args, **kwargs)
                text = " ".join(str(a) for a in args)
                if text:
                    STATE.records.add(f"exception message {type(self).__name__} (test {STATE.current})", text)

            return __init__

        cls.__init__ = make(original, cls.__name__)  # type: ignore[method-assign]
        STATE.hooked.append(f"exception {cls.__module__}.{cls.__name__}")

        def undo(c: type[BaseException] = cls, o: Any = original) -> None:
            c.__init__ = o  # type: ignore[method-assign]

        STATE.undo.append(undo)


class RecordingHandler(logging.Handler):
    """(b): every record that reaches the root logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        STATE.records.add(f"log record {record.name} (test {STATE.current})", text)


def _meant_to_carry(method: str, path: str) -> bool:
    return any(m == method and p.search(path) for m, p in _MEANT)


# Fields of the responses in MEANT_TO_CARRY that hand a secret over: recorded as secrets (the services that
# issue them may run in another process, out of reach of the hooks of (a)).
SECRET_FIELDS = frozenset({"credential", "client_secret", "enc", "mac", "dek", "access_token", "refresh_token"})


def _secret_fields(value: Any, kind: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in SECRET_FIELDS and isinstance(v, str):
                try:
                    record_secret(bytes.fromhex(v) if k in ("enc", "mac", "dek") else v, f"{kind} {k}")
                except ValueError:
                    record_secret(v, f"{kind} {k}")
                if k == "credential" and "." in v:
                    record_secret(v.split(".", 1)[1], f"{kind} {k}")
            else:
                _secret_fields(v, kind)
    elif isinstance(value, list):
        for v in value:
            _secret_fields(v, kind)


def _record_response(response: Any) -> None:
    request = response.request
    path = request.url.path
    if _meant_to_carry(request.method, path):
        with contextlib.suppress(Exception):
            _secret_fields(response.json(), f"HTTP {request.method} {path}")
        return
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    try:
        body = response.text
    except Exception:
        body = response.content.decode("latin-1")
    STATE.records.add(
        f"HTTP {request.method} {path} -> {response.status_code} (test {STATE.current})", headers + "\n" + body
    )


def _streaming(response: Any) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


def _response_hook(response: Any) -> None:
    if _streaming(response):
        return
    try:
        response.read()
    except Exception:
        return
    _record_response(response)


async def _async_response_hook(response: Any) -> None:
    if _streaming(response):
        return
    try:
        await response.aread()
    except Exception:
        return
    _record_response(response)


def hook_httpx() -> None:
    httpx = _import("httpx")
    if httpx is None:
        return

    def make(original: Callable[..., None], hook: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            hooks = self.event_hooks
            hooks.setdefault("response", [])
            if hook not in hooks["response"]:
                hooks["response"].append(hook)
            self.event_hooks = hooks

        return __init__

    _patch(httpx.Client, "__init__", lambda o: make(o, _response_hook), "httpx.Client")
    _patch(httpx.AsyncClient, "__init__", lambda o: make(o, _async_response_hook), "httpx.AsyncClient")


def collect_files(folders: Iterable[Path]) -> None:
    """(c): server logs in TENANTCARD_LOG_DIR and the ``*.log`` files tests wrote under their tmp folders."""
    seen: set[Path] = set()
    for folder in folders:
        if not folder.exists():
            continue
        for path in folder.rglob("*.log"):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            try:
                STATE.records.add(f"log file {path.name} ({path.parent.name})", path.read_text("utf-8", "replace"))
            except OSError:
                continue


# ------------------------------------------------------------------------------------------ pytest hooks

_handler = RecordingHandler()
_findings_key = pytest.StashKey[list[Finding]]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if FINDINGS_ENV not in os.environ:
        os.environ[FINDINGS_ENV] = tempfile.mkdtemp(prefix="tenantcard-secret-scan-")
    if LOG_DIR_ENV not in os.environ:
        os.environ[LOG_DIR_ENV] = tempfile.mkdtemp(prefix="tenantcard-logs-")
    STATE.log_dirs = [Path(os.environ[LOG_DIR_ENV])]
    hook_secret_sources()
    hook_exceptions()
    hook_httpx()
    logging.getLogger().addHandler(_handler)
    # Every level of tenantcard's own loggers reaches the handler (other libraries keep their levels).
    logging.getLogger("tenantcard").setLevel(logging.DEBUG)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    STATE.current = item.nodeid
    yield
    STATE.current = "(between tests)"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    folders = list(STATE.log_dirs)
    with contextlib.suppress(Exception):
        folders.append(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    collect_files(folders)
    findings = scan(STATE.records.items(), STATE.registry.needles())
    out = Path(os.environ[FINDINGS_ENV])
    worker = config.workerinput["workerid"] if _is_worker(config) else "main"  # type: ignore[attr-defined]
    (out / f"{worker}.json").write_text(
        json.dumps(
            {
                "findings": [f.__dict__ for f in findings],
                "secrets": len(STATE.registry),
                "records": len(STATE.records),
            }
        )
    )
    if _is_worker(config):
        return
    merged: list[Finding] = []
    totals = [0, 0]
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text())
        merged.extend(Finding(**f) for f in data["findings"])
        totals[0] += data["secrets"]
        totals[1] += data["records"]
    config.stash[_findings_key] = merged
    config.stash[_totals_key] = (totals[0], totals[1])
    if merged and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_totals_key = pytest.StashKey[tuple[int, int]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    findings = config.stash.get(_findings_key, [])
    secrets, records = config.stash.get(_totals_key, (0, 0))
    if findings:
        terminalreporter.section("secret scan: LEAKS (invariant 7)", red=True)
        for f in findings:
            terminalreporter.write_line(f.line())
    else:
        terminalreporter.write_line(
            f"secret scan: {secrets} secrets, {records} log lines / exception messages / HTTP responses: no leak"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_handler)
    for undo in reversed(STATE.undo):
        try:
            undo()
        except Exception:
            traceback.print_exc()
    STATE.undo.clear()
