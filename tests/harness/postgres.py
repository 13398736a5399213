"""A throw-away real PostgreSQL server for tests.

Binaries come from ``tools/install-test-servers.sh`` (``.cache/pg-bins.env``, or the
``PG15_BIN``/``PG16_BIN``/``PG17_BIN`` environment variables). When the tests run as root,
``initdb`` and ``postgres`` run as the unprivileged user ``nobody`` (postgres refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[2]
BINS_ENV_FILE = REPO_ROOT / ".cache" / "pg-bins.env"
INSTALL_HINT = "run `bash tools/install-test-servers.sh` first"

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres-admin-pw"
HOST = "127.0.0.1"

_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "16MB",
    "max_wal_size": "256MB",
    "password_encryption": "scram-sha-256",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "unix_socket_permissions": "0700",
    "max_worker_processes": "4",
    "max_parallel_workers": "0",
    "max_parallel_workers_per_gather": "0",
    "autovacuum": "off",
    "jit": "off",
}


class PostgresServerError(RuntimeError):
    pass


def pg_bin_dir(version: int) -> Path:
    """The bin folder holding ``initdb``/``postgres`` of the given major version."""
    key = f"PG{version}_BIN"
    value = os.environ.get(key)
    if not value and BINS_ENV_FILE.is_file():
        for line in BINS_ENV_FILE.read_text().splitlines():
            name, _, val = line.partition("=")
            if name.strip() == key:
                value = val.strip()
    if not value:
        raise PostgresServerError(f"no {key} in environment or {BINS_ENV_FILE}; {INSTALL_HINT}")
    path = Path(value)
    if not (path / "postgres").is_file() or not (path / "initdb").is_file():
        raise PostgresServerError(f"{key}={path} has no postgres/initdb; {INSTALL_HINT}")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


class PostgresServer:
    """One PostgreSQL cluster in a private temp folder, listening on 127.0.0.1:<free port>.

    Superuser ``postgres`` authenticates with a password (scram-sha-256) over TCP and is
    trusted on the unix socket in ``socket_dir``.
    """

    user = SUPERUSER
    password = SUPERUSER_PASSWORD

    def __init__(
        self,
        version: int,
        bin_dir: Path | str | None = None,
        *,
        netns: str | None = None,
        listen_host: str | None = None,
    ):
        """`netns`: run the postmaster inside that network namespace (root only), listening
        on `listen_host` (an address of the namespace); clients in the same subnet may
        connect with the superuser password."""
        self.version = int(version)
        self.bin_dir = Path(bin_dir) if bin_dir else pg_bin_dir(self.version)
        self.netns = netns
        self.host = listen_host or HOST
        self.port: int | None = None
        self.base_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        # Run as nobody when we are root (postgres refuses to run as root).
        self._run_as: dict = {}
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self._owner = (pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    # ------------------------------------------------------------------ paths
    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "sock"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "server.log"

    @property
    def run_as_user(self) -> str:
        uid = self._owner[0] if self._owner else os.geteuid()
        return pwd.getpwuid(uid).pw_name

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> PostgresServer:
        if self.proc is not None:
            raise PostgresServerError("already started")
        t0 = time.monotonic()
        # Short path: the socket path (.../sock/.s.PGSQL.<port>) must stay < 100 bytes.
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"tfipg{self.version}-", dir="/tmp"))
        self.socket_dir.mkdir()
        self._chown(self.base_dir, self.socket_dir)
        try:
            self._initdb()
            last_error: Exception | None = None
            for _attempt in range(3):  # retry if another process grabbed our free port
                self.port = _free_port()
                try:
                    self._spawn_and_wait(timeout)
                    break
                except PostgresServerError as exc:
                    last_error = exc
                    if "could not bind" not in _tail(self.log_path) and "in use" not in str(exc):
                        raise
            else:
                raise last_error  # type: ignore[misc]
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        atexit.register(self.stop)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._shut_down(timeout)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _shut_down(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)  # "immediate" shutdown
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def children(self) -> list[int]:
        """Process ids of the postmaster's live children (backends, checkpointer, ...)."""
        return _children(self.pid) if self.pid else []

    def kill(self, timeout: float = 10.0) -> None:
        """Crash the server: SIGKILL the postmaster, as the OOM killer or `kill -9` would.

        The children notice the postmaster's death and exit on their own (as PostgreSQL
        does); any still alive after `timeout` are killed too, so that `restart()` finds
        the shared memory free. The data folder and port are kept.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            raise PostgresServerError("server not running")
        children = _children(proc.pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + timeout
        while (alive := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while any(_alive(pid) for pid in children):
            time.sleep(0.02)

    def restart(self, timeout: float = 30.0) -> PostgresServer:
        """Start again on the same data folder and port (after `kill()`: crash recovery);
        a running server is shut down ("fast") first."""
        if self.base_dir is None or self.port is None:
            raise PostgresServerError("server never started")
        self._shut_down(timeout)
        self._spawn_and_wait(timeout)
        return self

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _chown(self, *paths: Path) -> None:
        for p in paths:
            os.chmod(p, 0o700)
            if self._owner:
                os.chown(p, *self._owner)

    def _initdb(self) -> None:
        assert self.base_dir is not None
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        self._chown(pwfile)
        os.chmod(pwfile, 0o600)
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "TZ": "UTC",
        }
        res = subprocess.run(
            cmd,
            cwd=self.base_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **self._run_as,
        )
        pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise PostgresServerError(
                f"initdb (PostgreSQL {self.version}) failed with {res.returncode}:\n{res.stdout}"
            )
        hba = self.data_dir / "pg_hba.conf"
        lines = [
            "# written by tests/harness/postgres.py",
            "local all all trust",
            "host all all 127.0.0.1/32 scram-sha-256",
        ]
        if self.host != HOST:
            lines.append("host all all samenet scram-sha-256")
        hba.write_text("\n".join(lines) + "\n")

    def _spawn_and_wait(self, timeout: float) -> None:
        assert self.base_dir is not None and self.port is not None
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
        ]  # fmt: skip
        for key, value in {**_SERVER_SETTINGS, "listen_addresses": self.host}.items():
            cmd += ["-c", f"{key}={value}"]
        run_as = self._run_as
        if self.netns:
            # `ip netns exec` and setpriv exec (no fork): the Popen pid is the postmaster's.
            prefix = ["ip", "netns", "exec", self.netns]
            if self._owner:
                uid, gid = self._owner
                prefix += ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
            cmd, run_as = prefix + cmd, {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **run_as,
            )
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc.wait()
                self.proc = None
                raise PostgresServerError(
                    f"postgres {self.version} exited with {rc} during startup; log tail:\n"
                    f"{_tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_exc = exc
            if time.monotonic() > deadline:
                raise PostgresServerError(
                    f"postgres {self.version} not ready after {timeout}s ({last_exc}); "
                    f"log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    # ------------------------------------------------------------------ client helpers
    def dsn(self, dbname: str = "postgres") -> str:
        """libpq conninfo string for the superuser over TCP with password auth."""
        if self.port is None:
            raise PostgresServerError("server not started")
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", autocommit: bool = True, **kwargs):
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    def create_database(self, name: str, owner: str | None = None) -> None:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with self.connect() as conn:
            conn.execute(query)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def create_role(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))

    def drop_role(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def temp_database(self, prefix: str = "immuta_") -> Database:
        """Create a uniquely named empty database; drop it with ``.drop()``."""
        name = f"{prefix}{uuid.uuid4().hex[:16]}"
        self.create_database(name)
        return Database(self, name)

    def __repr__(self) -> str:
        return f"PostgresServer(version={self.version}, port={self.port}, base_dir={self.base_dir})"


@dataclass
class Database:
    """A database on a :class:`PostgresServer` (superuser credentials)."""

    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def connect(self, autocommit: bool = True, **kwargs):
        return self.server.connect(self.name, autocommit=autocommit, **kwargs)

    def drop(self) -> None:
        self.server.drop_database(self.name)


__all__ = [
    "Database",
    "HOST",
    "SUPERUSER",
    "SUPERUSER_PASSWORD",
    "PostgresServer",
    "PostgresServerError",
    "pg_bin_dir",
]
