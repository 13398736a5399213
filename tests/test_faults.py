"""Faults, each followed by a re-apply that must converge with no duplicate or partial rows.

1. The PostgreSQL server crashes (SIGKILL of the postmaster) in the middle of a crawl.
2. The provider process is SIGKILLed in the middle of an apply.
3. The server restarts between plan and apply; the provider's pooled connections are
   terminated by the server in the middle of one apply.
4. Added latency and a network partition, with the server in a network namespace (latency
   from a delaying proxy in the namespace, a partition from the veth taken down: this
   kernel has no netem).

The moments are made deterministic rather than raced: a catalog lock held by the test stops
the crawl of one database, the store's row count tells when an apply is under way, and
`terraform_data` resources with a local-exec provisioner run the fault between two mappings
while the provider sits idle. Each provider bug these tests found (SrcBug) is fixed.
The outcomes and timings are written up in docs/reliability.md ("Faults").
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from harness import (
    Background,
    Body,
    Database,
    PostgresServer,
    Raw,
    Result,
    Terraform,
    connection_block,
    expression,
    finished,
    labelled,
    provider_block,
    resource,
    wait_for,
)
from psycopg import sql

from tfprovider_immuta_pg.protocol import plugin

APP_NAME = "terraform-provider-immuta"
CLONE_NEWNET = 0x40000000
PG_VERSION = 17


# ---------------------------------------------------------------------------- helpers


def provider_pids(parent: int) -> list[int]:
    """The terraform-provider-immuta processes terraform (`parent`) has running."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cmdline = (entry / "cmdline").read_bytes()
            if int(fields[1]) == parent and fields[0] != "Z" and APP_NAME.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def query(db: Database, text: str, params: tuple = ()) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(text, params).fetchall()


def store_exists(db: Database) -> bool:
    return query(db, "SELECT to_regnamespace('immuta') IS NOT NULL")[0][0]


def mapping_rows(db: Database) -> list[tuple]:
    if not store_exists(db):
        return []
    return query(db, "SELECT immuta_user, postgres_mode FROM immuta.user_mappings ORDER BY 1")


def object_rows(db: Database) -> list[tuple]:
    return query(
        db,
        "SELECT connection_key, database_name, schema_name, object_name, object_type "
        "FROM immuta.data_objects ORDER BY 1, 2, 3, 4",
    )


def connection_keys(db: Database) -> list[str]:
    if not store_exists(db):
        return []
    return [r[0] for r in query(db, "SELECT connection_key FROM immuta.connections")]


def make_tables(server: PostgresServer, database: str, count: int, schema: str = "app") -> set:
    """`count` tables and one view in `database` (created); the objects expected."""
    server.create_database(database)
    ident = sql.Identifier(schema)
    with server.connect(database) as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        for i in range(count):
            table = sql.Identifier(f"t{i:04d}")
            conn.execute(sql.SQL("CREATE TABLE {}.{} (id int)").format(ident, table))
        conn.execute(sql.SQL("CREATE VIEW {}.v AS SELECT 1 AS one").format(ident))
    return {(database, schema, f"t{i:04d}", "table") for i in range(count)} | {
        (database, schema, "v", "view")
    }


def connection_hcl(
    server: PostgresServer | SimpleNamespace, database: str, name: str = "Warehouse"
) -> str:
    return connection_block(server.host, server.port, database, name)


def mappings_hcl(
    name: str,
    users: list[str],
    depends_on: str = "",
    connection_id: object = Raw("immuta_postgres_connection.main.id"),
) -> str:
    """`immuta_user_mapping.<name>` for each user (for_each), mode "none"."""
    after = {"depends_on": [Raw(depends_on)]} if depends_on else {}
    return resource(
        "immuta_user_mapping",
        name,
        for_each=Raw(f"toset({expression(users)})"),
        connection_id=connection_id,
        immuta_user=Raw("each.value"),
        postgres=Body(mode="none"),
        **after,
    )


def assert_converged(tf: Terraform) -> None:
    plan = tf.plan()
    assert plan.returncode == 0, f"the plan after the re-apply is not empty:\n{plan.output}"


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: the faults crash and restart it."""
    pg = PostgresServer(PG_VERSION).start()
    try:
        yield pg
    finally:
        pg.stop()


def immuta_database(server: PostgresServer, name: str = "immuta") -> Database:
    server.create_database(name)
    return Database(server, name)


class SrcBug(AssertionError):
    """The provider bug a test was written to catch (see docs/reliability.md, "Faults")."""


def errors(result: Result) -> str:
    """The diagnostics of a failed command (the plan it printed before left out)."""
    text = result.text
    return text[text.find("Error:") :] if "Error:" in text else text


# ---------------------------------------------------------------------------- 1. crash


def test_server_killed_mid_crawl_then_restarted(
    server: PostgresServer, terraform: Terraform, background: Callable[..., Background]
) -> None:
    immuta = immuta_database(server)
    expected = make_tables(server, "sales", 40) | make_tables(server, "hr", 25)
    expected |= make_tables(server, "ops", 10)
    terraform.write(provider_block(server) + connection_hcl(server, immuta.name))
    terraform.init()

    # The test holds an exclusive lock on hr's pg_namespace: hr's crawl (its first catalog
    # query) waits for it, after the survey (version, privileges, databases) has run and
    # while the other databases are crawled. (A lock on pg_class would stop the backend's
    # start-up instead, before any query.)
    blocker = server.connect("hr", autocommit=False)
    blocker.execute("LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE")
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = 'hr' "
        "AND wait_event_type = 'Lock'"
    )
    wait_for(
        "the provider's crawl of hr to wait on the lock",
        lambda: apply.running() and query(Database(server, "postgres"), waiting, (APP_NAME,))[0][0],
    )
    assert not store_exists(immuta), "nothing is written before the crawl ends"
    crashed_at = time.monotonic()
    server.kill()
    with contextlib.suppress(psycopg.Error):
        blocker.close()
    result = finished(apply)
    fail_seconds = time.monotonic() - crashed_at
    assert result.returncode == 1, result.output
    assert "immuta_postgres_connection.main: Creation complete" not in result.text
    assert not terraform.resources(), "a failed create records nothing in the state"

    t0 = time.monotonic()
    server.restart()  # crash recovery, same data folder and port
    restart_seconds = time.monotonic() - t0
    assert not store_exists(immuta), "the crash left a partial registration behind"

    t0 = time.monotonic()
    terraform.apply()
    reapply_seconds = time.monotonic() - t0
    rows = object_rows(immuta)
    assert len(rows) == len(set(rows)) == len(expected)
    assert {r[1:] for r in rows} == expected
    assert connection_keys(immuta) == ["Warehouse"]
    state = terraform.resources()["immuta_postgres_connection.main"]
    assert state["data_object_count"] == len(expected)
    assert sorted(state["databases"]) == ["hr", "ops", "postgres", "sales"]
    assert_converged(terraform)
    print(
        f"\n[faults] crash mid-crawl: apply failed {fail_seconds:.2f} s after the kill; "
        f"restart {restart_seconds:.2f} s; re-apply {reapply_seconds:.2f} s"
    )
    diagnostic = errors(result)
    if f"{server.host}:{server.port}" not in diagnostic:
        raise SrcBug(f"the error does not name {server.host}:{server.port}: {diagnostic}")


# ---------------------------------------------------------------------------- 2. provider


def test_provider_killed_mid_apply(
    server: PostgresServer, terraform: Terraform, background: Callable[..., Background]
) -> None:
    immuta = immuta_database(server)
    users = [f"user{i:03d}@example.com" for i in range(120)]
    terraform.write(
        provider_block(server) + connection_hcl(server, immuta.name) + mappings_hcl("m", users)
    )
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
    # SIGKILL the provider once a quarter of the mappings are committed.
    wait_for(
        "30 mappings to be written",
        lambda: not apply.running() or len(mapping_rows(immuta)) >= 30,
    )
    killed = provider_pids(apply.pid)
    assert killed, "no terraform-provider-immuta process under terraform"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    result = finished(apply)
    assert result.returncode == 1, result.output
    # Terraform's words depend on the calls in flight when the provider died.
    diagnostic = errors(result)
    assert "Plugin did not respond" in diagnostic or "Request cancelled" in diagnostic, diagnostic

    committed = {user for user, _ in mapping_rows(immuta)}
    recorded = {
        values["immuta_user"]
        for address, values in terraform.resources().items()
        if address.startswith("immuta_user_mapping.")
    }
    assert 30 <= len(committed) < len(users)
    assert recorded <= committed, "terraform recorded a mapping that was never written"
    # Mappings written but not recorded (the provider died before terraform heard of them)
    # are planned again; the upsert makes them converge.
    orphans = committed - recorded

    t0 = time.monotonic()
    terraform.apply()
    reapply_seconds = time.monotonic() - t0
    rows = mapping_rows(immuta)
    assert [user for user, _ in rows] == sorted(users), "every mapping exactly once"
    assert connection_keys(immuta) == ["Warehouse"]
    assert_converged(terraform)

    # The same, made certain: a mapping written but missing from the state is created
    # again by the next apply, and the upsert leaves one row.
    terraform.run("state", "rm", f'immuta_user_mapping.m["{users[0]}"]')
    terraform.apply()
    assert mapping_rows(immuta) == rows
    assert_converged(terraform)
    print(
        f"\n[faults] provider killed with {len(committed)}/{len(users)} mappings written, "
        f"{len(recorded)} recorded, {len(orphans)} written but unrecorded; re-apply "
        f"{reapply_seconds:.2f} s"
    )


def test_connection_written_but_not_recorded(server: PostgresServer, terraform: Terraform) -> None:
    """A provider killed after its commit, before terraform recorded the state: the state
    loses the connection while the store keeps it. Re-apply refuses to register it twice
    and names the import that adopts it; after that import the plan is empty."""
    immuta = immuta_database(server)
    make_tables(server, "sales", 3)
    terraform.write(provider_block(server) + connection_hcl(server, immuta.name))
    terraform.apply()
    before = object_rows(immuta)
    terraform.run("state", "rm", "immuta_postgres_connection.main")

    result = terraform.apply_fails("A connection named 'Warehouse' is already registered")
    found = re.search(r"terraform import <address> '([^']+)'", result.text)
    assert found, result.output
    assert object_rows(immuta) == before, "the refused create changed nothing"
    terraform.run("import", "-no-color", "immuta_postgres_connection.main", found.group(1))
    assert_converged(terraform)
    assert connection_keys(immuta) == ["Warehouse"] and object_rows(immuta) == before


# ---------------------------------------------------------------------------- 3. restarts


def test_server_crashed_and_restarted_between_plan_and_apply(
    server: PostgresServer, terraform: Terraform
) -> None:
    immuta = immuta_database(server)
    make_tables(server, "sales", 5)
    users = [f"user{i}@example.com" for i in range(6)]
    config = provider_block(server) + connection_hcl(server, immuta.name)
    terraform.write(config + mappings_hcl("m", users[:3]))
    terraform.apply()
    terraform.write(config + mappings_hcl("m", users))
    terraform.run("plan", "-out=tfplan", "-no-color", "-input=false")  # refreshes: connects

    server.kill()
    server.restart()
    t0 = time.monotonic()
    terraform.run("apply", "-no-color", "-input=false", "tfplan")
    apply_seconds = time.monotonic() - t0
    assert [user for user, _ in mapping_rows(immuta)] == users
    assert_converged(terraform)
    print(f"\n[faults] apply of the saved plan after a crash-restart: {apply_seconds:.2f} s")


DROP_SCRIPT = """\
import pathlib, sys, time
import psycopg
dsn, out, pause = sys.argv[1], pathlib.Path(sys.argv[2]), float(sys.argv[3])
if out.exists() or (out.parent / "disarmed").exists():
    sys.exit(0)  # once per step, and not in the re-apply after a failure
with psycopg.connect(dsn, autocommit=True) as conn:
    n = conn.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE application_name = 'terraform-provider-immuta'"
    ).fetchone()[0]
out.write_text(str(n))
time.sleep(pause)
"""


def fault_step(name: str, command: str, depends_on: str) -> str:
    """A terraform_data resource whose local-exec provisioner runs `command` once every
    resource in `depends_on` is done and before anything that depends on it starts."""
    return resource(
        "terraform_data",
        name,
        depends_on=[Raw(depends_on)],
        **{labelled("provisioner", "local-exec"): Body(command=command)},
    )


def dropping_config(
    server: PostgresServer, immuta: Database, tf: Terraform, pause: float
) -> tuple[str, list[str]]:
    """Connection, then 3 groups of 8 mappings; between the groups the server terminates
    every backend of the provider, which sits idle (-parallelism=1, ordered by depends_on)
    and has had its pooled connection back for about `pause` seconds when it goes on."""
    script = tf.workdir / "drop.py"
    script.write_text(DROP_SCRIPT)

    def drop(step: str) -> str:
        out = tf.workdir / f"{step}.terminated"
        return shlex.join([sys.executable, str(script), server.dsn(), str(out), str(pause)])

    groups = [[f"{g}{i}@example.com" for i in range(8)] for g in "abc"]
    return (
        provider_block(server)
        + connection_hcl(server, immuta.name)
        + mappings_hcl("a", groups[0])
        + fault_step("drop1", drop("drop1"), "immuta_user_mapping.a")
        + mappings_hcl("b", groups[1], "terraform_data.drop1")
        + fault_step("drop2", drop("drop2"), "immuta_user_mapping.b")
        + mappings_hcl("c", groups[2], "terraform_data.drop2")
    ), sorted(u for g in groups for u in g)


def run_with_dropped_connections(server: PostgresServer, tf: Terraform, pause: float) -> Result:
    immuta = immuta_database(server)
    config, users = dropping_config(server, immuta, tf, pause)
    tf.write(config)
    t0 = time.monotonic()
    result = tf.apply("-parallelism=1", check=False)
    seconds = time.monotonic() - t0
    dropped = {p.stem: int(p.read_text()) for p in tf.workdir.glob("*.terminated")}
    (tf.workdir / "disarmed").touch()
    if result.returncode != 0:
        # Converges after the failure: the re-apply sees the connections of a new process.
        tf.apply("-parallelism=1")
    assert [user for user, _ in mapping_rows(immuta)] == users
    assert_converged(tf)
    assert dropped and all(dropped.values()), dropped
    print(
        f"\n[faults] backends terminated with the pool idle ~{pause} s: apply exit "
        f"{result.returncode} in {seconds:.2f} s, terminated {dropped}"
    )
    return result


def test_pool_replaces_connections_dropped_while_idle_long(
    server: PostgresServer, terraform: Terraform
) -> None:
    """Idle longer than the pool's 2 s check: the dead connection is pinged and replaced."""
    result = run_with_dropped_connections(server, terraform, pause=2.5)
    assert result.returncode == 0, errors(result)


def test_pool_replaces_connections_dropped_while_idle_briefly(
    server: PostgresServer, terraform: Terraform
) -> None:
    result = run_with_dropped_connections(server, terraform, pause=0)
    if result.returncode != 0:
        raise SrcBug(errors(result))


# ---------------------------------------------------------------------------- 4. network
#
# This kernel has no netem (and no tc classifiers, no iptables): latency comes from a
# delaying TCP proxy inside the namespace, a partition from taking the namespace's end of
# the veth down, which drops every packet silently (the host keeps its route, marked
# "linkdown", and a pinned neighbour entry), as a pulled cable or a silent firewall would.


class Link:
    """A network namespace joined to the host by a veth pair: host side `host_if`
    10.213.X.1/30, namespace side `ns_if` 10.213.X.2/30 (X random among unused)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns, self.host_if, self.ns_if = f"tfi-{tag}", f"tfi{tag}h", f"tfi{tag}n"
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        free = [x for x in range(256) if f" 10.213.{x}." not in used]
        x = free[secrets.randbelow(len(free))]
        self.host_ip, self.ns_ip = f"10.213.{x}.1", f"10.213.{x}.2"

    @staticmethod
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def create(self) -> None:
        try:
            self.ip("netns", "add", self.ns)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            pytest.skip(f"`ip netns add` is not permitted here: {getattr(exc, 'stderr', exc)}")
        self.ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self.ip("link", "set", self.ns_if, "netns", self.ns)
        self.ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self.ip("link", "set", self.host_if, "up")
        self.ip("-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self.ip("-n", self.ns, "link", "set", self.ns_if, "up")
        self.ip("-n", self.ns, "link", "set", "lo", "up")
        # A pinned neighbour entry: in a partition packets vanish (every connect times out)
        # instead of ARP failing (which fails fast with "server closed the connection").
        shown = subprocess.run(
            ["ip", "-n", self.ns, "-o", "link", "show", self.ns_if], capture_output=True, text=True
        ).stdout
        mac = shown.split("link/ether ")[1].split()[0]
        self.ip(
            "neigh", "replace", self.ns_ip, "lladdr", mac, "dev", self.host_if, "nud", "permanent"
        )

    @property
    def partition_command(self) -> list[str]:
        return ["ip", "-n", self.ns, "link", "set", self.ns_if, "down"]

    def partition(self) -> None:
        self.ip(*self.partition_command[1:])

    def heal(self) -> None:
        self.ip("-n", self.ns, "link", "set", self.ns_if, "up")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class DelayProxy:
    """A TCP proxy living in a network namespace: what the client sends reaches the server
    `delay` seconds later (one way, like netem on the host's veth), in order."""

    def __init__(self, ns: str, host: str, upstream: tuple[str, int]) -> None:
        self.ns, self.host, self.upstream = ns, host, upstream
        self.delay = 0.0
        self.port: int | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)

    def start(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        if self._error or self.port is None:
            raise RuntimeError(f"delay proxy did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            # setns changes the network namespace of this thread only.
            fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            self._loop = asyncio.new_event_loop()
            server = self._loop.run_until_complete(asyncio.start_server(self._client, self.host, 0))
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.set_exception_handler(lambda loop, context: None)  # shutdown noise
            self._loop.run_until_complete(self._cancel_connections())
            self._loop.close()

    @staticmethod
    async def _cancel_connections() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        with contextlib.suppress(OSError, ConnectionError):
            await asyncio.gather(
                self._pipe(reader, up_writer, delayed=True),
                self._pipe(up_reader, writer, delayed=False),
            )
        for w in (writer, up_writer):
            w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + (self.delay if delayed else 0.0), data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


@pytest.fixture
def link() -> Iterator[Link]:
    link = Link()
    try:
        link.create()
        yield link
    finally:
        link.destroy()


@pytest.fixture
def ns_server(link: Link) -> Iterator[PostgresServer]:
    """A PostgreSQL server inside the link's namespace, at link.ns_ip."""
    pg = PostgresServer(PG_VERSION, netns=link.ns, listen_host=link.ns_ip)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def proxy(link: Link, ns_server: PostgresServer) -> Iterator[DelayProxy]:
    """The way the provider reaches ns_server: link.ns_ip:proxy.port."""
    assert ns_server.port is not None
    proxy = DelayProxy(link.ns, link.ns_ip, (ns_server.host, ns_server.port)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def proxied_config(link: Link, server: PostgresServer, proxy: DelayProxy) -> str:
    """Provider (connect_timeout = 2) and connection, through the proxy."""
    assert proxy.port is not None
    return provider_block(server, connect_timeout=2) + connection_hcl(
        SimpleNamespace(host=link.ns_ip, port=proxy.port), "immuta"
    )


def test_latency_then_partition(
    link: Link, ns_server: PostgresServer, proxy: DelayProxy, terraform: Terraform
) -> None:
    immuta = immuta_database(ns_server)
    make_tables(ns_server, "sales", 5)
    users = [f"user{i}@example.com" for i in range(4)]
    config = proxied_config(link, ns_server, proxy)
    terraform.write(config + mappings_hcl("m", users[:2]))
    terraform.init()

    # (a) Everything the provider sends reaches the server 300 ms late: slower, correct.
    proxy.delay = 0.3
    t0 = time.monotonic()
    terraform.apply()
    slow_seconds = time.monotonic() - t0
    assert [user for user, _ in mapping_rows(immuta)] == users[:2]
    proxy.delay = 0.0

    # (b) Partition. The refresh fails within a bounded time, naming the server and the
    # timeout; nothing is written.
    link.partition()
    terraform.write(config + mappings_hcl("m", users[:3]))
    t0 = time.monotonic()
    result = terraform.apply(check=False)
    partition_seconds = time.monotonic() - t0
    assert result.returncode == 1, result.output
    assert partition_seconds < 20, partition_seconds
    diagnostic = errors(result)
    assert f"Cannot connect to PostgreSQL at {link.ns_ip}:{proxy.port}" in diagnostic, diagnostic
    assert "No answer within connect_timeout = 2 s" in diagnostic, diagnostic
    # plan alone (the drift run) fails the same way.
    t0 = time.monotonic()
    plan = terraform.plan()
    plan_seconds = time.monotonic() - t0
    assert plan.returncode == 1 and plan_seconds < 20, (plan_seconds, plan.output)
    assert f"Cannot connect to PostgreSQL at {link.ns_ip}:{proxy.port}" in errors(plan)
    assert "No answer within connect_timeout = 2 s" in errors(plan)

    # Healed: the re-apply converges.
    link.heal()
    terraform.write(config + mappings_hcl("m", users))
    t0 = time.monotonic()
    terraform.apply()
    heal_seconds = time.monotonic() - t0
    assert [user for user, _ in mapping_rows(immuta)] == users
    assert connection_keys(immuta) == ["Warehouse"]
    assert_converged(terraform)
    print(
        f"\n[faults] apply with +300 ms one-way delay {slow_seconds:.2f} s; partitioned apply "
        f"failed in {partition_seconds:.2f} s, plan in {plan_seconds:.2f} s; re-apply after "
        f"healing {heal_seconds:.2f} s"
    )


def test_partition_mid_apply(
    link: Link,
    ns_server: PostgresServer,
    proxy: DelayProxy,
    terraform: Terraform,
    background: Callable[..., Background],
) -> None:
    """The partition begins between two mappings of one apply (-parallelism=1): the
    provider's pooled connection is established, the next query gets no answer."""
    immuta = immuta_database(ns_server)
    groups = [[f"{g}{i}@example.com" for i in range(n)] for g, n in (("a", 4), ("b", 2))]
    terraform.write(
        proxied_config(link, ns_server, proxy)
        + mappings_hcl("a", groups[0])
        + fault_step("partition", shlex.join(link.partition_command), "immuta_user_mapping.a")
        + mappings_hcl("b", groups[1], "terraform_data.partition")
    )
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-parallelism=1")
    wait_for("the partition", lambda: not apply.running() or "down" in link_state(link))
    t0 = time.monotonic()
    result = apply.wait(timeout=PARTITION_BOUND)  # None: hung, and killed with its provider
    seconds = time.monotonic() - t0
    hung = result is None
    link.heal()

    terraform.write(
        proxied_config(link, ns_server, proxy)
        + mappings_hcl("a", groups[0])
        + mappings_hcl("b", groups[1])
    )
    terraform.apply()
    assert [user for user, _ in mapping_rows(immuta)] == sorted(groups[0] + groups[1])
    assert_converged(terraform)
    outcome = (
        f"still hanging after {seconds:.1f} s, killed" if hung else f"failed in {seconds:.1f} s"
    )
    print(f"\n[faults] partition mid-apply: {outcome}")
    if result is None:
        raise SrcBug(f"the apply hung for more than {PARTITION_BOUND} s after the partition")
    assert result.returncode == 1
    assert f"{link.ns_ip}:{proxy.port}" in errors(result)


PARTITION_BOUND = 15  # seconds: connect_timeout = 2 leaves ample room


def link_state(link: Link) -> str:
    return subprocess.run(
        ["ip", "-n", link.ns, "-o", "link", "show", link.ns_if], capture_output=True, text=True
    ).stdout.lower()


def test_connection_closed_during_start_up_is_explained(terraform: Terraform) -> None:
    """What a partition gives once ARP has given up, or a proxy or balancer with no server
    behind it: the TCP connection opens and closes before PostgreSQL answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_every_connection() -> None:
        with contextlib.suppress(OSError):
            while True:
                listener.accept()[0].close()

    threading.Thread(target=close_every_connection, daemon=True).start()
    try:
        fake = SimpleNamespace(host="127.0.0.1", port=port, user="postgres", password="x")
        terraform.write(provider_block(fake) + connection_hcl(fake, "immuta"))
        result = terraform.apply(check=False)
    finally:
        listener.close()
    diagnostic = errors(result)
    assert result.returncode == 1
    assert f"Cannot connect to PostgreSQL at 127.0.0.1:{port}" in diagnostic, diagnostic
    if "server closed the connection unexpectedly" not in diagnostic:
        raise SrcBug(f"the reason is garbled: {diagnostic}")


def test_partition_fails_the_other_reads_at_once(
    link: Link, ns_server: PostgresServer, proxy: DelayProxy, terraform: Terraform
) -> None:
    """With the server unreachable, one read waits connect_timeout; the reads queued behind
    it fail at once, naming the earlier attempt, instead of each waiting in turn."""
    immuta_database(ns_server)
    users = [f"user{i}@example.com" for i in range(9)]
    config = proxied_config(link, ns_server, proxy)
    terraform.write(config + mappings_hcl("m", users))
    terraform.init()
    terraform.apply()
    # The same mappings with the connection id written out: no dependency on the connection,
    # so Terraform refreshes all ten resources at once.
    connection_id = f"{link.ns_ip}:{proxy.port}/immuta/Warehouse"
    terraform.write(config + mappings_hcl("m", users, connection_id=connection_id))
    terraform.plan_is_empty()

    link.partition()
    plan = terraform.plan()
    text = errors(plan)
    assert plan.returncode == 1, plan.output
    failed = re.findall(r"Error: Cannot connect to PostgreSQL at", text)
    assert len(failed) == len(users) + 1, text
    assert len(re.findall(r"No\s+answer\s+within\s+connect_timeout\s+=\s+2\s+s", text)) == len(
        failed
    )
    fast = re.findall(r"Not\s+retried:\s+an\s+attempt", text)
    # Only what was in flight together (one quick lane's worth) waited the timeout out.
    assert len(failed) - len(fast) <= plugin.QUICK_WORKERS, text

    link.heal()
    assert terraform.plan().returncode == 0  # a new provider process tries again
