"""Refresh: the provider's read of one large immuta_postgres_connection, in milliseconds.

    python -m bench.refresh [--per-database 10000] [--databases 10] [--rounds 15]

The data set is the crawl benchmark's (bench/crawl.py: `--databases` databases of
`--per-database` objects). One connection registers all of them, as a user that holds exactly
Immuta's documented privileges (a superuser's grants are never checked); then the provider's
read of that connection (what `terraform plan` runs on refresh: the registration, version
and privilege checks, each database's fingerprints) is timed in-process, without Terraform
around it:

- cold: a new provider (new connection pool) per read, as Terraform starts a new provider
  process for every command;
- warm: the same provider again, its pooled connections reused.

Each figure is the median of `--rounds` reads. Then the same after a GRANT to another role on
one table of one database (the privileges changed, the registering user's did not), and
after a REVOKE of the registering user's own privilege on one table (a warning names it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from harness import PostgresServer

from bench.crawl import create_dataset, database_name
from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.provider import Context
from tfprovider_immuta_pg.immuta.postgres_connection.worker import ConnectionWorker
from tfprovider_immuta_pg.immuta.provider import ImmutaProvider

IMMUTA_DATABASE = "immuta_refresh"
REGISTRAR = "bench_registrar"  # holds exactly the privileges Immuta documents, not superuser
PASSWORD = "bench-registrar-pw"


def least_privilege(server: PostgresServer, databases: list[str]) -> None:
    """REGISTRAR: CREATEROLE, owner of the Immuta database, and CONNECT, USAGE, SELECT,
    INSERT, UPDATE, DELETE, TRUNCATE WITH GRANT OPTION on everything it registers."""
    with server.connect() as conn:
        conn.execute(f"CREATE ROLE {REGISTRAR} LOGIN CREATEROLE PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE {IMMUTA_DATABASE} OWNER {REGISTRAR}")
        conn.execute("CREATE ROLE bench_reader")
        for name in databases:
            conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {REGISTRAR} WITH GRANT OPTION")
    for name in databases:
        with server.connect(name) as conn:
            conn.execute(
                """DO $$ DECLARE s text; BEGIN
                     FOR s IN SELECT nspname FROM pg_namespace
                              WHERE nspname = 'public' OR nspname LIKE 's%' LOOP
                       EXECUTE format('GRANT USAGE ON SCHEMA %I TO bench_registrar
                                       WITH GRANT OPTION', s);
                       EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL
                                       TABLES IN SCHEMA %I TO bench_registrar
                                       WITH GRANT OPTION', s);
                     END LOOP; END $$"""
            )


def provider(server: PostgresServer) -> ImmutaProvider:
    made = ImmutaProvider()
    diags = Diagnostics()
    made.configure({"username": REGISTRAR, "password": PASSWORD, "aws": None}, diags)
    if diags.has_errors:
        raise RuntimeError(diags)
    return made


def planned(server: PostgresServer, databases: list[str]) -> dict[str, Any]:
    return {
        "display_name": "Refresh",
        "deployment_type": "self_managed",
        "hostname": server.host,
        "port": server.port,
        "database": IMMUTA_DATABASE,
        "on_missing_privileges": "error",
        "object_sync": "plan",
        "include": {"databases": databases, "schemas": None, "objects": None},
        "exclude": None,
    }


def median_ms(rounds: int, read: Callable[[], Context]) -> tuple[float, Context]:
    times, ctx = [], Context()
    for _ in range(rounds):
        started = time.perf_counter()
        ctx = read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), ctx


def measure(server: PostgresServer, state: Any, rounds: int) -> dict[str, tuple[float, Context]]:
    warm_provider = provider(server)

    def read_with(made: ImmutaProvider) -> Context:
        ctx = Context()
        ConnectionWorker(made.access, ctx).read(state)
        return ctx

    return {
        "cold": median_ms(rounds, lambda: read_with(provider(server))),
        "warm": median_ms(rounds, lambda: read_with(warm_provider)),
    }


def report(label: str, results: dict[str, tuple[float, Context]]) -> None:
    warnings = [d.summary for d in results["cold"][1].diags]
    print(
        f"{label:<44}{results['cold'][0]:>10.1f}{results['warm'][0]:>10.1f}   "
        + ("; ".join(warnings) or "-")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.refresh", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--per-database", type=int, default=10_000)
    parser.add_argument("--databases", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    server = PostgresServer(17).start()
    try:
        create_dataset(server, args.per_database)
        names = [database_name(n) for n in range(args.databases)]
        least_privilege(server, names)
        made = provider(server)
        state = ConnectionWorker(made.access, Context()).create(planned(server, names))
        print(
            f"registered {state['data_object_count']} objects in {len(names)} databases; "
            f"median of {args.rounds} reads (ms)"
        )
        print(f"{'':<44}{'cold':>10}{'warm':>10}   warnings")
        report("nothing changed", measure(server, state, args.rounds))
        with server.connect(names[-1]) as conn:
            conn.execute("GRANT SELECT ON s1.t1 TO bench_reader")
        report("GRANT to another role on one table", measure(server, state, args.rounds))
        with server.connect(names[-1]) as conn:
            conn.execute(f"REVOKE GRANT OPTION FOR SELECT ON s1.t1 FROM {REGISTRAR}")
        report("the registering user lost one table", measure(server, state, args.rounds))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
