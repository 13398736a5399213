"""`./build.sh demo`: a local PostgreSQL 17 with sample data, and examples/quickstart applied.

    ./build.sh demo          start (or reuse) the server, seed it, terraform init + apply
    ./build.sh demo status   is it running? (exit 0 running, 3 stopped or absent)
    ./build.sh demo stop     terraform destroy, stop the server, remove .cache/demo

Everything lives in .cache/demo/: pg/ (data folder, socket folder, server.log), work/ (a copy
of examples/quickstart with its Terraform state), state.json (port and password, mode 0600)
and env.sh (exports for psql and terraform). The server is started with `pg_ctl start`, which
detaches the postmaster into its own session: it outlives this script, and `pg_ctl stop`
(from `demo stop`) shuts it down cleanly. As root, initdb/pg_ctl/postgres run as `nobody`.

Server plumbing (initdb, pg_hba, binaries, run-as-nobody) is reused from
tests/harness/postgres.py.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
DEMO_DIR = CACHE / "demo"
PG_BASE = DEMO_DIR / "pg"
WORK = DEMO_DIR / "work"
STATE_FILE = DEMO_DIR / "state.json"
ENV_FILE = DEMO_DIR / "env.sh"
LOCK_FILE = CACHE / "demo.lock"
EXAMPLE = ROOT / "examples" / "quickstart"
CLI_CONFIG = ROOT / "dist" / "terraformrc"

ADMIN_USER = "immuta_admin"
IMMUTA_DATABASE = "immuta"
PG_VERSION = 17
NOT_RUNNING = 3  # the exit status `pg_ctl status` uses too


def _load(name: str, path: Path):
    """Import one harness module by path (the harness package __init__ pulls in moto)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_pg = _load("tfipg_demo_pg", ROOT / "tests" / "harness" / "postgres.py")
_tf = _load("tfipg_demo_tf", ROOT / "tests" / "harness" / "terraform.py")


def say(text: str = "") -> None:
    print(text, flush=True)


def fail(text: str, code: int = 1) -> int:
    print(f"demo: {text}", file=sys.stderr, flush=True)
    return code


class DemoError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------- server


class DemoServer(_pg.PostgresServer):
    """The harness server, in a persistent folder, started detached with pg_ctl."""

    def __init__(self, bin_dir: Path, port: int | None = None) -> None:
        super().__init__(PG_VERSION, bin_dir)
        self.base_dir = PG_BASE
        self.port = port

    @property
    def socket_dir(self) -> Path:
        sock = PG_BASE / "sock"
        # unix socket paths are limited to ~107 bytes: fall back to /tmp for deep checkouts.
        if len(str(sock / ".s.PGSQL.65535")) > 100:
            digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]
            return Path("/tmp") / f"tfipg-demo-{digest}"
        return sock

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "demo.conf"

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def initialize(self) -> None:
        """initdb (superuser `postgres`, trust on the socket, scram over TCP) + settings."""
        shutil.rmtree(PG_BASE, ignore_errors=True)
        PG_BASE.mkdir(parents=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(PG_BASE, self.socket_dir)
        self._initdb()
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# tools/demo.py\ninclude 'demo.conf'\n")
        self.write_settings()

    def write_settings(self) -> None:
        settings = {
            "listen_addresses": _pg.HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "password_encryption": "scram-sha-256",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "max_worker_processes": "4",
            "jit": "off",
        }
        self.conf_path.write_text(
            "# written by tools/demo.py\n" + "".join(f"{k} = '{v}'\n" for k, v in settings.items())
        )
        if self._owner:
            os.chown(self.conf_path, *self._owner)

    def pg_ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
        return subprocess.run(
            [str(self.bin_dir / "pg_ctl"), *args, "-D", str(self.data_dir)],
            cwd=PG_BASE,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._run_as,
        )

    def running(self) -> bool:
        return self.initialized() and self.pg_ctl("status").returncode == 0

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return None

    def start_detached(self) -> None:
        """`pg_ctl start -w`: the postmaster runs in its own session, logging to server.log."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        for attempt in range(3):
            res = self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path))
            if res.returncode == 0:
                return
            log = _pg._tail(self.log_path, 20)
            if attempt < 2 and ("could not bind" in log or "already in use" in log):
                self.port = _pg._free_port()  # someone took our port while we were stopped
                self.write_settings()
                continue
            raise DemoError(f"pg_ctl start failed:\n{res.stdout}{res.stderr}\n{log}")

    def stop_detached(self) -> None:
        res = self.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        if res.returncode != 0 and self.running():
            res = self.pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")
            if res.returncode != 0:
                raise DemoError(f"pg_ctl stop failed:\n{res.stdout}{res.stderr}")

    def admin(self, dbname: str = "postgres"):
        """Superuser `postgres` over the unix socket (trust; no password needed)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=_pg.SUPERUSER,
            dbname=dbname,
            autocommit=True,
        )

    def server_version(self) -> str:
        with self.admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]


def bin_dir() -> Path:
    """PG17 binaries from .cache/pg-bins.env, installing them first when needed."""
    try:
        return _pg.pg_bin_dir(PG_VERSION)
    except _pg.PostgresServerError:
        say("PostgreSQL 17 binaries not installed yet: running tools/install-test-servers.sh")
        subprocess.run(["bash", str(ROOT / "tools" / "install-test-servers.sh")], check=True)
        return _pg.pg_bin_dir(PG_VERSION)


def load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def save_state(state: dict) -> None:
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(STATE_FILE)


# ---------------------------------------------------------------------------------- data

SALES_SQL = """
CREATE SCHEMA finance;
CREATE TABLE public.customers (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    email   text,
    country text
);
CREATE TABLE public.orders (
    id          int PRIMARY KEY,
    customer_id int REFERENCES public.customers (id),
    ordered_at  date NOT NULL,
    amount      numeric(10, 2) NOT NULL
);
INSERT INTO public.customers VALUES
    (1, 'Acme Corp', 'billing@acme.example', 'US'),
    (2, 'Globex', 'ap@globex.example', 'DE'),
    (3, 'Initech', 'finance@initech.example', 'US');
INSERT INTO public.orders VALUES
    (1, 1, '2024-11-02', 1200.00),
    (2, 2, '2024-12-15', 310.50),
    (3, 1, '2025-01-20', 89.99),
    (4, 3, '2025-02-03', 4500.00);
CREATE VIEW public.customer_orders AS
    SELECT c.name, c.country, o.ordered_at, o.amount
    FROM public.orders o JOIN public.customers c ON c.id = o.customer_id;
CREATE TABLE finance.invoices (
    id        int NOT NULL,
    issued_on date NOT NULL,
    total     numeric(10, 2) NOT NULL
) PARTITION BY RANGE (issued_on);
CREATE TABLE finance.invoices_2024 PARTITION OF finance.invoices
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE finance.invoices_2025 PARTITION OF finance.invoices
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO finance.invoices VALUES
    (1, '2024-11-30', 1200.00), (2, '2024-12-31', 310.50), (3, '2025-01-31', 89.99);
CREATE MATERIALIZED VIEW finance.monthly_revenue AS
    SELECT date_trunc('month', ordered_at)::date AS month, sum(amount) AS revenue
    FROM public.orders GROUP BY 1;
"""

HR_SQL = """
CREATE TABLE public.employees (
    id        int PRIMARY KEY,
    full_name text NOT NULL,
    salary    numeric(10, 2),
    ssn       text
);
INSERT INTO public.employees VALUES
    (1, 'Alice Example', 98000, '123-45-6789'),
    (2, 'Bob Example', 87000, '987-65-4321');
"""

# Roles the quickstart maps Immuta users to: "alice" by name, "Bob" through the
# case-insensitive fallback from the Immuta username "bob".
SAMPLE_ROLES = ("alice", "Bob")


def seed(server: DemoServer, password: str) -> None:
    """The admin role, the Immuta database and the sample data set (from scratch)."""
    with server.admin() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ADMIN_USER,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL("{} ROLE {} WITH LOGIN SUPERUSER PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(ADMIN_USER), sql.Literal(password)
            )
        )
        for role in SAMPLE_ROLES:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for db in ("sales", "hr", IMMUTA_DATABASE):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(IMMUTA_DATABASE), sql.Identifier(ADMIN_USER)
            )
        )
        conn.execute("CREATE DATABASE sales")
        conn.execute("CREATE DATABASE hr")
    for db, script in (("sales", SALES_SQL), ("hr", HR_SQL)):
        with server.admin(db) as conn:
            conn.execute(script)


# ---------------------------------------------------------------------------------- terraform


def tf_env(state: dict) -> dict[str, str]:
    return _tf.terraform_env(
        {
            "TF_VAR_pg_host": _pg.HOST,
            "TF_VAR_pg_port": str(state["port"]),
            "TF_VAR_pg_username": ADMIN_USER,
            "TF_VAR_pg_password": state["password"],
            "TF_VAR_immuta_database": IMMUTA_DATABASE,
        }
    )


def terraform(state: dict, *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run terraform in the work folder; output streams to the terminal unless quiet."""
    color = [] if sys.stdout.isatty() or args[0] in ("state", "output") else ["-no-color"]
    return subprocess.run(
        ["terraform", f"-chdir={WORK}", *args, *color],
        env=tf_env(state),
        stdin=subprocess.DEVNULL,
        capture_output=quiet,
        text=True,
    )


def terraform_tee(state: dict, *args: str) -> tuple[int, str]:
    """Run terraform, streaming its output to the terminal and keeping a copy."""
    color = [] if sys.stdout.isatty() else ["-no-color"]
    proc = subprocess.Popen(
        ["terraform", f"-chdir={WORK}", *args, *color],
        env=tf_env(state),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    copy = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        copy.append(line)
    return proc.wait(), "".join(copy)


def sync_example() -> None:
    """Copy examples/quickstart/*.tf into the work folder (state and .terraform stay)."""
    WORK.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in EXAMPLE.glob("*.tf")}
    for old in WORK.glob("*.tf"):
        if old.name not in wanted:
            old.unlink()
    for name in sorted(wanted):
        shutil.copyfile(EXAMPLE / name, WORK / name)


def write_env_file(state: dict) -> None:
    values = {
        "PGHOST": _pg.HOST,
        "PGPORT": str(state["port"]),
        "PGUSER": ADMIN_USER,
        "PGPASSWORD": state["password"],
        "PGDATABASE": IMMUTA_DATABASE,
        "TF_CLI_CONFIG_FILE": str(CLI_CONFIG),
        **{k: v for k, v in tf_env(state).items() if k.startswith("TF_VAR_")},
    }
    ENV_FILE.write_text(
        "# written by tools/demo.py: `source` it to reach the demo server\n"
        + "".join(f"export {k}='{v}'\n" for k, v in sorted(values.items()))
    )
    os.chmod(ENV_FILE, 0o600)


def state_addresses(state: dict) -> list[str]:
    if not (WORK / "terraform.tfstate").exists():
        return []
    res = terraform(state, "state", "list", quiet=True)
    return res.stdout.split() if res.returncode == 0 else []


# ---------------------------------------------------------------------------------- commands


def cmd_start() -> int:
    t_total = time.monotonic()
    if not CLI_CONFIG.is_file():
        return fail(f"{CLI_CONFIG} is missing: run ./build.sh first")
    if shutil.which("terraform") is None:
        return fail("the terraform CLI is not on PATH")
    os.chmod(CACHE, 0o755)  # postgres runs as nobody: it must traverse to its folders
    DEMO_DIR.mkdir(exist_ok=True)
    os.chmod(DEMO_DIR, 0o755)

    state = load_state()
    server = DemoServer(bin_dir(), state.get("port"))
    timings: list[tuple[str, float]] = []

    t0 = time.monotonic()
    if server.running():
        say(f"PostgreSQL {PG_VERSION} already running on {_pg.HOST}:{server.port}: reusing it")
    else:
        if not (state and server.initialized()):
            say(f"Creating a PostgreSQL {PG_VERSION} cluster in {PG_BASE}")
            state = {"port": _pg._free_port(), "password": secrets.token_urlsafe(24)}
            server.port = state["port"]
            server.initialize()
            shutil.rmtree(WORK, ignore_errors=True)  # its state described the old cluster
            save_state(state)
        say(f"Starting PostgreSQL {PG_VERSION} on {_pg.HOST}:{server.port}")
        server.start_detached()
        if server.port != state["port"]:
            state["port"] = server.port
            save_state(state)
    timings.append(("server", time.monotonic() - t0))

    if not state.get("seeded"):
        t0 = time.monotonic()
        say("Creating the Immuta database, sample databases sales and hr, roles alice and Bob")
        seed(server, state["password"])
        state["seeded"] = True
        save_state(state)
        timings.append(("seed", time.monotonic() - t0))
    write_env_file(state)

    sync_example()
    t0 = time.monotonic()
    res = terraform(state, "init", "-input=false", "-no-color", quiet=True)
    if res.returncode != 0:
        return fail(f"terraform init failed:\n{res.stdout}{res.stderr}")
    timings.append(("terraform init", time.monotonic() - t0))

    t0 = time.monotonic()
    say(f"\n$ terraform -chdir={WORK} apply -auto-approve")
    returncode, output = terraform_tee(state, "apply", "-auto-approve", "-input=false")
    timings.append(("terraform apply", time.monotonic() - t0))
    partial = False
    if returncode != 0:
        # A resource this build declares but does not implement yet is not a demo failure,
        # as long as the connection itself was registered.
        addresses = state_addresses(state)
        if "not implemented yet" not in output or (
            "immuta_postgres_connection.sales" not in addresses
        ):
            return fail(
                "terraform apply failed (see above). The server keeps running; fix and rerun "
                "`./build.sh demo`, or clean up with `./build.sh demo stop`."
            )
        partial = True

    if partial:
        say("\n$ terraform output")
        terraform(state, "output")
    timings.append(("total", time.monotonic() - t_total))
    print_instructions(server, state, partial)
    say("Timings: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in timings))
    return 0


def print_instructions(server: DemoServer, state: dict, partial: bool) -> None:
    port = state["port"]
    psql = shutil.which("psql") or "psql"
    conninfo = f"host={_pg.HOST} port={port} user={ADMIN_USER} dbname={IMMUTA_DATABASE}"
    tf = f"terraform -chdir={WORK}"
    say(
        f"""
The demo is running: PostgreSQL {server.server_version()} on {_pg.HOST}:{port} (pid {server.pid()})
  data {server.data_dir}, log {server.log_path}
  user {ADMIN_USER} (superuser), password in {ENV_FILE} (mode 0600)"""
    )
    if partial:
        say(
            "\nNote: the connection is registered, but part of the configuration did not "
            "apply (see the errors above, e.g. a resource this build does not implement yet)."
        )
    say(
        f"""
Inspect it:
  source {ENV_FILE}      # PGHOST/PGPORT/PGUSER/PGPASSWORD, TF_VAR_*, TF_CLI_CONFIG_FILE
  {psql} "{conninfo}" -c 'TABLE immuta.connections'
  {psql} "{conninfo}" -c 'SELECT * FROM immuta.data_objects ORDER BY 2, 3, 4'
  {psql} "{conninfo}" -c 'TABLE immuta.user_mappings'
  {tf} state list
  {tf} state show immuta_postgres_connection.sales
  {tf} plan -detailed-exitcode    # exit 0: no drift, 2: changes pending

Drift detection: drop a mapped role, and the next plan is not empty (exit 2):
  {psql} "{conninfo}" -c 'DROP ROLE "Bob"'
  {tf} plan -detailed-exitcode

Status: ./build.sh demo status
Stop:   ./build.sh demo stop      # terraform destroy, stop PostgreSQL, remove {DEMO_DIR}
"""
    )


def cmd_status() -> int:
    state = load_state()
    if not state or not PG_BASE.exists():
        say(f"demo: not running (no {DEMO_DIR}); start it with ./build.sh demo")
        return NOT_RUNNING
    server = DemoServer(bin_dir(), state.get("port"))
    if not server.running():
        say(f"demo: stopped (data kept in {PG_BASE}); start it with ./build.sh demo")
        return NOT_RUNNING
    try:
        version = server.server_version()
    except psycopg.Error as exc:
        say(f"demo: postgres pid {server.pid()} is up but not answering: {exc}")
        return 1
    addresses = state_addresses(state)
    say(
        f"demo: running: PostgreSQL {version} on {_pg.HOST}:{state['port']} "
        f"(pid {server.pid()}), data {server.data_dir}"
    )
    say(f"      terraform state in {WORK}: {len(addresses)} resource(s)")
    for address in addresses:
        say(f"        {address}")
    say(f"      credentials: source {ENV_FILE}; stop with ./build.sh demo stop")
    return 0


def cmd_stop() -> int:
    state = load_state()
    if not DEMO_DIR.exists():
        say("demo: nothing to stop")
        return 0
    status = 0
    server = None
    if state and PG_BASE.exists():
        server = DemoServer(bin_dir(), state.get("port"))
        if server.initialized() and not server.running():
            with contextlib.suppress(DemoError):
                server.start_detached()  # terraform destroy needs the server
        if server.running() and state_addresses(state):
            say(f"$ terraform -chdir={WORK} destroy -auto-approve")
            res = terraform(state, "destroy", "-auto-approve", "-input=false")
            if res.returncode != 0:
                status = fail("terraform destroy failed (see above); removing the demo anyway")
        if server.running():
            say(f"Stopping PostgreSQL (pid {server.pid()})")
            server.stop_detached()
    socket_dir = server.socket_dir if server else None
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    if socket_dir and not socket_dir.is_relative_to(DEMO_DIR):
        shutil.rmtree(socket_dir, ignore_errors=True)
    say(f"Removed {DEMO_DIR}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./build.sh demo", description=__doc__.split("\n\n")[0].strip()
    )
    parser.add_argument("command", nargs="?", default="start", choices=("start", "status", "stop"))
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one demo command at a time
        try:
            return {"start": cmd_start, "status": cmd_status, "stop": cmd_stop}[args.command]()
        except (DemoError, _pg.PostgresServerError, psycopg.Error) as exc:
            return fail(str(exc))
        except subprocess.CalledProcessError as exc:
            return fail(f"{' '.join(map(str, exc.cmd))} exited {exc.returncode}")


if __name__ == "__main__":
    sys.exit(main())
