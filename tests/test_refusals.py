"""Every refusal PostgreSQL gives the provider, produced by a real server, as the user reads it.

Each test makes a real PostgreSQL 17 answer with one SQLSTATE class while real Terraform
runs the provider: a missing privilege (42501), no connection slot (53300), the session
ended by an administrator (57P01), a cancelled statement (57014: statement_timeout and
pg_cancel_backend), a read-only database (25006), a lock held past lock_timeout (55P03),
concurrent SERIALIZABLE writers (40001), a deadlock (40P01), a full disk (53100), and objects
dropped while the provider works (42P01, 3D000). It asserts the diagnostic the user reads
(the server, the database, the server's words, the fix), that no refusal reads as a bug in
the provider, and that nothing was written; a transient failure is retried within the
documented bound, and converges once its cause is gone.

The moments are made certain, not raced: the test holds the state store's advisory lock, so
the provider waits for it (pg_stat_activity shows the wait) right before it writes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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
    finished,
    provider_block,
    resource,
    step,
    wait_for,
)
from harness.store_dump import store_dump
from psycopg import sql

from tfprovider_immuta_pg.immuta.pg import RETRY_ATTEMPTS
from tfprovider_immuta_pg.immuta.store import LOCK_KEY

APP = "terraform-provider-immuta"
PASSWORD = "refusals-pw-41c9"


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Terraform, Path]:
    """A Terraform working directory whose provider debug log goes to a file."""
    log = tmp_path / "provider.log"
    tf = Terraform(tmp_path / "tf", env={"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(log)})
    return tf, log


def connection(db: Database, name: str = "Production", label: str = "main", **extra: object) -> str:
    return connection_block(db.host, db.port, db.name, name, label=label, **extra)


def write(tf: Terraform, db: Database, **extra: object) -> None:
    tf.write(provider_block(db.server) + connection(db, **extra))


def server_of(db: Database) -> str:
    return f"{db.host}:{db.port}"


def refused(result: Result, *expected: str) -> str:
    """The folded output of a failed command, holding each of `expected`."""
    assert result.returncode == 1, result.output
    text = result.text
    for part in expected:
        assert " ".join(part.split()) in text, f"{part!r} not in:\n{result.output}"
    assert "bug in the provider" not in text and "Traceback" not in result.output
    return text


def retries(log: Path, sqlstate: str) -> int:
    """How many times the provider's debug log says it tried again after `sqlstate`."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(rf"trying again.*sqlstate={sqlstate}\b", text))


def alter_database(db: Database, setting: str, value: str) -> None:
    with db.server.connect() as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(db.name), sql.Identifier(setting), sql.Literal(value)
            )
        )


def provider_backends(db: Database, wait_event: str | None = None) -> list[int]:
    """The provider's sessions on `db` (those waiting on a lock of that kind, if given)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s"
    params: list[object] = [APP, db.name]
    if wait_event is not None:
        query += " AND wait_event_type = 'Lock' AND wait_event = %s"
        params.append(wait_event)
    with db.server.connect() as conn:
        return [r[0] for r in conn.execute(query, params)]


def waiting_for_the_lock(db: Database) -> list[int]:
    return wait_for(  # type: ignore[return-value]
        "the provider to wait for the state store's lock",
        lambda: provider_backends(db, "advisory"),
    )


class StoreLock:
    """The state store's advisory lock, held by a session of the test: a writer waits."""

    def __init__(self, db: Database) -> None:
        self.conn = db.connect()
        self.conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))

    def release(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        with contextlib.suppress(psycopg.Error):
            self.conn.close()


def end_the_waiting_session_once(db: Database, lock: StoreLock) -> None:
    """pg_terminate_backend on the provider's session waiting for `lock`; once the provider
    waits again on a new session, release the lock."""
    first = waiting_for_the_lock(db)
    with db.server.connect() as conn:
        for pid in first:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wait_for(
        "the provider to wait again, on a new session",
        lambda: set(provider_backends(db, "advisory")) - set(first),
    )
    lock.release()


@pytest.fixture
def store_lock(immuta: Database) -> Iterator[Callable[[], StoreLock]]:
    held: list[StoreLock] = []

    def hold() -> StoreLock:
        held.append(StoreLock(immuta))
        return held[-1]

    try:
        yield hold
    finally:
        for lock in held:
            lock.release()


def registered(db: Database) -> list[tuple]:
    with db.connect() as conn:
        if not conn.execute("SELECT to_regclass('immuta.connections') IS NOT NULL").fetchone()[0]:
            return []
        return conn.execute(
            "SELECT connection_key, deployment_type FROM immuta.connections ORDER BY 1"
        ).fetchall()


GAVE_UP = f"The provider tried {RETRY_ATTEMPTS} times over"


# ---------------------------------------------------------------------------- 42501


def test_permission_denied(terraform: Terraform, immuta: Database, pg17: PostgresServer) -> None:
    """A REVOKE: the refresh by a user without USAGE on the state store's schema."""
    mapping = resource(
        "immuta_user_mapping",
        "alice",
        connection_id=Raw("immuta_postgres_connection.main.id"),
        immuta_user="alice",
        postgres=Body(mode="none"),
    )
    terraform.write(provider_block(pg17) + connection(immuta) + mapping)
    terraform.apply()
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    with pg17.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(reader), sql.Literal(PASSWORD)
            )
        )
    try:
        before, state = store_dump(immuta), terraform.state_file_text()
        as_reader = provider_block(pg17, username=reader, password=PASSWORD)
        terraform.write(as_reader + connection(immuta) + mapping)
        text = refused(
            terraform.plan(),
            f"Permission denied on PostgreSQL at {server_of(immuta)}",
            f"On database '{immuta.name}' on {server_of(immuta)}, user '{reader}', reading "
            "connection 'Production': permission denied for schema immuta (SQLSTATE 42501)",
            f'User "{reader}" lacks a privilege this needs. Grant it as the object\'s owner or '
            "a superuser, or use credentials that hold it. The state store (schema immuta in "
            "the Immuta database) needs USAGE on the schema and SELECT, INSERT, UPDATE, DELETE "
            "on its tables, or its ownership.",
        )
        assert "Error:" not in text.split("Error: Permission denied", 1)[1], "one error"
        assert store_dump(immuta) == before and terraform.state_file_text() == state
    finally:
        pg17.drop_role(reader)


# ---------------------------------------------------------------------------- 53300


def test_too_many_connections(
    tmp_path: Path, immuta: Database, pg17: PostgresServer, background: Callable[..., Background]
) -> None:
    """A role with CONNECTION LIMIT 1 whose one slot is taken: mappings written with its
    credentials wait with backoff, then give up; a slot freed meanwhile lets them through."""
    owner = Terraform(tmp_path / "owner")
    write(owner, immuta)
    owner.apply()
    connection_id = owner.resources()["immuta_postgres_connection.main"]["id"]
    mapper = f"mapper_{uuid.uuid4().hex[:8]}"
    with pg17.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1 PASSWORD {}").format(
                sql.Identifier(mapper), sql.Literal(PASSWORD)
            )
        )
    with immuta.connect() as conn:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA immuta TO {}").format(sql.Identifier(mapper)))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA immuta TO {}"
            ).format(sql.Identifier(mapper))
        )
    mapper_dsn = psycopg.conninfo.make_conninfo(immuta.dsn, user=mapper, password=PASSWORD)
    tf = Terraform(tmp_path / "mapper")
    tf.write(
        provider_block(pg17, username=mapper, password=PASSWORD)
        + resource("immuta_user_mapping", "bob", connection_id=connection_id, immuta_user="bob")
    )
    try:
        with step("every slot taken: tried with backoff, then a clear error"):
            slot = psycopg.connect(mapper_dsn)
            before = store_dump(immuta)
            started = time.monotonic()
            refused(
                tf.apply(check=False),
                f"Cannot connect to PostgreSQL at {server_of(immuta)}",
                f"Connecting to database '{immuta.name}' on {server_of(immuta)} as '{mapper}' "
                f'failed: connection failed: connection to server at "{immuta.host}", port '
                f'{immuta.port} failed: FATAL: too many connections for role "{mapper}"',
                f"Every connection slot for user '{mapper}' or for the server is taken "
                "(max_connections, or a CONNECTION LIMIT on the role or the database). Close "
                "idle sessions, raise the limit, or lower terraform's -parallelism.",
                GAVE_UP,
                "(at most 6 attempts within 30 s) and gave up.",
            )
            assert time.monotonic() - started < 30
            assert store_dump(immuta) == before, "nothing written"

        with step("the slot freed during the retries: the apply goes through"):
            apply = background(tf, "apply", "-auto-approve", "-no-color", "-input=false")
            time.sleep(1.0)
            slot.close()
            result = finished(apply)
            assert result.returncode == 0, result.output
            with immuta.connect() as conn:
                users = conn.execute("SELECT immuta_user FROM immuta.user_mappings").fetchall()
            assert users == [("bob",)]
    finally:
        with contextlib.suppress(psycopg.Error):
            slot.close()
        with immuta.connect() as conn:
            conn.execute(
                sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA immuta FROM {}").format(
                    sql.Identifier(mapper)
                )
            )
            conn.execute(
                sql.SQL("REVOKE ALL ON SCHEMA immuta FROM {}").format(sql.Identifier(mapper))
            )
        pg17.drop_role(mapper)


# ---------------------------------------------------------------------------- 57P01


def test_admin_shutdown_is_retried(
    logged: tuple[Terraform, Path],
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    """pg_terminate_backend on the provider's session while it waits to write: the whole
    transaction runs again on a new connection."""
    tf, log = logged
    write(tf, immuta)
    lock = store_lock()
    apply = background(tf, "apply", "-auto-approve", "-no-color", "-input=false")
    end_the_waiting_session_once(immuta, lock)
    result = finished(apply)
    assert result.returncode == 0, result.output
    assert registered(immuta) == [("Production", "self_managed")]
    assert retries(log, "57P01") == 1


def test_a_mapping_set_is_deleted_after_an_admin_shutdown(
    logged: tuple[Terraform, Path],
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    """immuta_user_mappings' delete runs like every other write: ended by an administrator
    while it waits to write, it runs again on a new connection and deletes every entry."""
    tf, log = logged
    users = {"alice@example.com": {}, "bob@example.com": {"postgres": {"mode": "none"}}}
    tf.write(
        provider_block(immuta.server)
        + connection(immuta)
        + resource(
            "immuta_user_mappings",
            "all",
            connection_id=Raw("immuta_postgres_connection.main.id"),
            mappings=users,
        )
    )
    tf.apply()
    with immuta.connect() as conn:
        stored = conn.execute("SELECT immuta_user FROM immuta.user_mappings ORDER BY 1")
        assert [r[0] for r in stored] == sorted(users)
    lock = store_lock()
    destroy = background(tf, "destroy", "-auto-approve", "-no-color", "-input=false")
    end_the_waiting_session_once(immuta, lock)
    result = finished(destroy)
    assert result.returncode == 0, result.output
    assert "Destroy complete! Resources: 2 destroyed." in result.output
    assert retries(log, "57P01") == 1
    assert registered(immuta) == []


def test_admin_shutdown_again_and_again_gives_up(
    terraform: Terraform,
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    write(terraform, immuta)
    store_lock()
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
    terminated: set[int] = set()
    while apply.running():
        with immuta.server.connect() as conn:
            for pid in set(provider_backends(immuta, "advisory")) - terminated:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                terminated.add(pid)
        time.sleep(0.02)
    refused(
        finished(apply),
        f"PostgreSQL at {server_of(immuta)} ended the connection",
        f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
        "connection 'Production': terminating connection due to administrator command "
        "(SQLSTATE 57P01)",
        "An administrator (pg_terminate_backend), a server shutdown or restart, or "
        f"idle_session_timeout ended the session. Check that the server at {server_of(immuta)} "
        "is up. The transaction was rolled back and nothing of it was written; the provider "
        "retries such failures on its own. Apply again.",
        GAVE_UP,
    )
    assert len(terminated) == RETRY_ATTEMPTS
    assert registered(immuta) == []


# ---------------------------------------------------------------------------- 57014


@pytest.mark.parametrize("how", ["statement_timeout", "pg_cancel_backend"])
def test_statement_cancelled(
    terraform: Terraform,
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
    how: str,
) -> None:
    """Not retried: a statement_timeout would strike again, and an administrator who cancels
    a statement means it."""
    if how == "statement_timeout":
        alter_database(immuta, "statement_timeout", "500ms")
    write(terraform, immuta)
    store_lock()
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
    if how == "pg_cancel_backend":
        with immuta.server.connect() as conn:
            for pid in waiting_for_the_lock(immuta):
                conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
    reason = "statement timeout" if how == "statement_timeout" else "user request"
    text = refused(
        finished(apply),
        f"PostgreSQL at {server_of(immuta)} cancelled a statement",
        f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
        f"connection 'Production': canceling statement due to {reason} (SQLSTATE 57014)",
        f'The statement ran longer than statement_timeout (set for database "{immuta.name}" '
        'or user "postgres"), or an administrator cancelled it (pg_cancel_backend). The '
        "provider may wait for the state store's lock while another apply writes: find what "
        'blocks it in pg_stat_activity, or raise the limit (ALTER ROLE "postgres" SET '
        "statement_timeout = '5min'), then apply again. The transaction was rolled back.",
    )
    assert "tried" not in text, "not retried"
    assert registered(immuta) == []


# ---------------------------------------------------------------------------- 25006


def test_read_only(terraform: Terraform, immuta: Database) -> None:
    alter_database(immuta, "default_transaction_read_only", "on")
    write(terraform, immuta)
    refused(
        terraform.apply(check=False),
        f"PostgreSQL at {server_of(immuta)} is read-only",
        f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
        "connection 'Production': cannot execute CREATE SCHEMA in a read-only transaction "
        "(SQLSTATE 25006)",
        "The transaction may not write: either hostname points at a standby (read replica), "
        f'or default_transaction_read_only is on for database "{immuta.name}" or user '
        '"postgres". Point hostname at the primary (writer) endpoint, or as a superuser run '
        f'ALTER DATABASE "{immuta.name}" SET default_transaction_read_only = off (or ALTER '
        'ROLE "postgres" ...). Nothing was written.',
    )
    assert store_dump(immuta) == ""


# ---------------------------------------------------------------------------- 55P03


def test_lock_not_available(
    logged: tuple[Terraform, Path],
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    tf, log = logged
    alter_database(immuta, "lock_timeout", "100ms")
    write(tf, immuta)
    with step("held throughout: retried within the bound, then a clear error"):
        lock = store_lock()
        refused(
            tf.apply(check=False),
            f"Lock not available on PostgreSQL at {server_of(immuta)}",
            f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
            "connection 'Production': canceling statement due to lock timeout (SQLSTATE 55P03)",
            "Another session held a lock the provider needs (another apply, or a long "
            "transaction on the state store's tables) for longer than lock_timeout. Find it in "
            'pg_locks and pg_stat_activity, or raise lock_timeout for user "postgres".',
            GAVE_UP,
        )
        assert retries(log, "55P03") == RETRY_ATTEMPTS - 1
        assert registered(immuta) == []

    with step("released during the retries: the apply goes through"):
        log.unlink()
        apply = background(tf, "apply", "-auto-approve", "-no-color", "-input=false")
        wait_for("a first retry", lambda: retries(log, "55P03"))
        lock.release()
        result = finished(apply)
        assert result.returncode == 0, result.output
        assert registered(immuta) == [("Production", "self_managed")]


# ---------------------------------------------------------------------------- 40001, 40P01


def test_serialization_failure_is_retried(
    logged: tuple[Terraform, Path],
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    """With default_transaction_isolation = serializable, the provider's snapshot is taken
    as it starts waiting for the store's lock; a writer that changes the same row meanwhile
    makes its UPDATE fail with 40001, and the transaction runs again, whole."""
    tf, log = logged
    alter_database(immuta, "default_transaction_isolation", "serializable")
    write(tf, immuta)
    tf.apply()
    write(tf, immuta, deployment_type="neon")
    lock = store_lock()
    apply = background(tf, "apply", "-auto-approve", "-no-color", "-input=false")
    waiting_for_the_lock(immuta)
    lock.conn.execute("UPDATE immuta.connections SET updated_at = now()")
    lock.release()
    result = finished(apply)
    assert result.returncode == 0, result.output
    assert retries(log, "40001") == 1
    assert registered(immuta) == [("Production", "neon")]
    tf.plan_is_empty()


def test_deadlock_is_retried(
    logged: tuple[Terraform, Path],
    immuta: Database,
    background: Callable[..., Background],
) -> None:
    """The test locks the connection's row, the provider (holding the store's lock) waits
    for it, then the test asks for the store's lock: a cycle. The provider's session checks
    for deadlocks first (deadlock_timeout 1 s against the test's 60 s), so PostgreSQL cancels
    the provider's transaction; it runs again once the test's transaction ends."""
    tf, log = logged
    write(tf, immuta)
    tf.apply()
    alter_database(immuta, "deadlock_timeout", "1s")
    write(tf, immuta, deployment_type="neon")
    test = immuta.connect(autocommit=False)
    try:
        test.execute("SET deadlock_timeout = '60s'")
        test.execute("SELECT 1 FROM immuta.connections FOR UPDATE")
        apply = background(tf, "apply", "-auto-approve", "-no-color", "-input=false")
        wait_for(
            "the provider to wait for the row",
            lambda: provider_backends(immuta, "transactionid"),
        )
        taken = threading.Thread(
            target=lambda: test.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        )
        taken.start()
        taken.join(30)
        assert not taken.is_alive(), "PostgreSQL broke the cycle on the provider's side"
        test.commit()
        result = finished(apply)
    finally:
        test.close()
    assert result.returncode == 0, result.output
    assert retries(log, "40P01") == 1
    assert registered(immuta) == [("Production", "neon")]


# ---------------------------------------------------------------------------- 53100


@pytest.fixture
def tiny_tablespace(pg17: PostgresServer, tmp_path: Path) -> Iterator[str | None]:
    """A tablespace on a 1 MiB tmpfs, filled up: its name, or None where this machine does
    not allow mounting (the test then makes the server raise 53100 another way)."""
    mount = Path(f"/tmp/tfipg-tiny-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    owner = pwd.getpwnam(pg17.run_as_user)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,mode=0700,uid={owner.pw_uid},"
         f"gid={owner.pw_gid}", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        print(f"\n[refusals] mount not allowed here ({mounted.stderr.strip()}): 53100 is raised "
              "by an event trigger instead of a full disk")  # fmt: skip
        mount.rmdir()
        yield None
        return
    name = f"tiny_{uuid.uuid4().hex[:8]}"
    try:
        with pg17.connect() as conn:
            conn.execute(
                sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                    sql.Identifier(name), sql.Literal(str(mount))
                )
            )
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(filler, b"\0" * 4096)
        except OSError:
            pass  # full
        finally:
            os.close(filler)
        yield name
    finally:
        with pg17.connect() as conn, contextlib.suppress(psycopg.Error):
            conn.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_disk_full(terraform: Terraform, pg17: PostgresServer, tiny_tablespace: str | None) -> None:
    immuta = pg17.temp_database()
    try:
        if tiny_tablespace is not None:
            alter_database(immuta, "default_tablespace", tiny_tablespace)
            server_words = "could not extend file"
        else:
            with immuta.connect() as conn:
                conn.execute(
                    """CREATE FUNCTION public.disk_full() RETURNS event_trigger LANGUAGE plpgsql
                       AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on
                       device' USING ERRCODE = 'disk_full'; END $$;
                       CREATE EVENT TRIGGER disk_full ON ddl_command_start
                       WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.disk_full()"""
                )
            server_words = "could not extend file: No space left on device"
        write(terraform, immuta)
        refused(
            terraform.apply(check=False),
            f"PostgreSQL at {server_of(immuta)} is out of disk space",
            f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
            f"connection 'Production': {server_words}",
            "(SQLSTATE 53100)",
            "The volume (or tablespace) holding the state store's tables in "
            f'"{immuta.name}" is full. Free space on it, then apply again. The transaction was '
            "rolled back: nothing of it was written.",
        )
        assert store_dump(immuta) == ""
    finally:
        immuta.drop()


# ---------------------------------------------------------------------------- 42P01, 3D000


def test_store_table_dropped_while_writing(
    terraform: Terraform,
    immuta: Database,
    store_lock: Callable[[], StoreLock],
    background: Callable[..., Background],
) -> None:
    first = provider_block(immuta.server) + connection(immuta)
    terraform.write(first)
    terraform.apply()
    terraform.write(first + connection(immuta, "Second", label="second"))
    lock = store_lock()
    apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
    waiting_for_the_lock(immuta)
    with immuta.connect() as conn:
        conn.execute("DROP TABLE immuta.crawled_databases")
    before = store_dump(immuta)
    lock.release()
    refused(
        finished(apply),
        f"Object missing on PostgreSQL at {server_of(immuta)}",
        f"On database '{immuta.name}' on {server_of(immuta)}, user 'postgres', registering "
        "connection 'Second': relation \"immuta.crawled_databases\" does not exist (SQLSTATE "
        "42P01)",
        "It was dropped outside Terraform (or while the provider was working).",
        "If it belongs to the state store (schema immuta in "
        f'"{immuta.name}"), restore it from a backup; if no other registration lives there, '
        "DROP SCHEMA immuta CASCADE and apply again to register from scratch.",
    )
    assert store_dump(immuta) == before, "the second registration left nothing behind"


def test_immuta_database_dropped_while_writing(
    terraform: Terraform,
    pg17: PostgresServer,
    background: Callable[..., Background],
) -> None:
    """DROP DATABASE ... WITH (FORCE) ends the provider's session (57P01, retried); the new
    attempt finds no database (3D000) and says how to fix it."""
    immuta = pg17.temp_database()
    try:
        write(terraform, immuta)
        lock = StoreLock(immuta)
        apply = background(terraform, "apply", "-auto-approve", "-no-color", "-input=false")
        waiting_for_the_lock(immuta)
    finally:
        immuta.drop()
    lock.release()
    refused(
        finished(apply),
        f"Cannot connect to PostgreSQL at {server_of(immuta)}",
        f'FATAL: database "{immuta.name}" does not exist',
        f"The database '{immuta.name}' does not exist on {server_of(immuta)}. Create the "
        "Immuta database first (CREATE DATABASE), or fix `database`.",
        "with immuta_postgres_connection.main",
    )
    assert not terraform.resources()
