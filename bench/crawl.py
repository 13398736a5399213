"""Crawl: register one immuta_postgres_connection over 10k, 50k and 100k objects.

    python -m bench.crawl [--per-database 10000] [--databases 1,5,10]

The data set is made once per server: 10 databases of `--per-database` objects each, in 10
schemas: about three quarters tables (one int column), a quarter views, 10 materialized views
and a partitioned table with 4 partitions (partitions are registered as tables). One
``DO $$ ... $$`` block (one transaction) builds the first database; the other nine are
copies of it (``CREATE DATABASE ... TEMPLATE ... STRATEGY WAL_LOG``): for 10k objects the
block takes about 5 s, a copy about 1.2 s (FILE_COPY: 2 to 3.5 s, its checkpoints dominate).
The server runs with fsync=off (the harness).

Each size is a fresh Immuta database and a connection whose ``include { databases = [...] }``
selects the first 1, 5 or 10 databases. The crawl time is the provider's own time for the
create (``ApplyResourceChange``: version and privilege checks, the per-database catalog
queries and fingerprints, writing the registration in one transaction), read from its debug
log (TF_LOG_PROVIDER=DEBUG, line "apply of immuta_postgres_connection done: seconds=..."). A
baseline connection that matches no database gives the fixed cost. The terraform apply wall
time and the provider's peak RSS during that apply are recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Body, PostgresServer, Terraform, connection_block, provider_block

from bench.common import MIB, flags, terraform

DATABASES = 10
SCHEMAS = 10
MATERIALIZED_VIEWS = 10
PARTITIONS = 4
DONE = re.compile(r"apply of immuta_postgres_connection done:.*?\bseconds=([0-9.]+)")


def database_name(n: int) -> str:
    return f"crawl_{n:02d}"


def dataset_ddl(objects: int) -> str:
    """One DO block creating exactly `objects` supported objects in SCHEMAS schemas."""
    views = objects // 4
    tables = objects - views - MATERIALIZED_VIEWS - 1 - PARTITIONS
    if tables < SCHEMAS:
        raise ValueError(f"at least {SCHEMAS + views + MATERIALIZED_VIEWS + 5} objects")
    s = SCHEMAS
    return f"""
DO $$
BEGIN
  FOR i IN 0..{s - 1} LOOP
    EXECUTE format('CREATE SCHEMA s%s', i);
  END LOOP;
  FOR i IN 0..{tables - 1} LOOP
    EXECUTE format('CREATE TABLE s%s.t%s (id int)', i % {s}, i);
  END LOOP;
  FOR i IN 0..{views - 1} LOOP
    EXECUTE format('CREATE VIEW s%s.v%s AS SELECT %s AS id', i % {s}, i, i);
  END LOOP;
  FOR i IN 0..{MATERIALIZED_VIEWS - 1} LOOP
    EXECUTE format('CREATE MATERIALIZED VIEW s%s.mv%s AS SELECT %s AS id', i % {s}, i, i);
  END LOOP;
  CREATE TABLE s0.events (id int, at date) PARTITION BY RANGE (at);
  FOR y IN 2020..{2020 + PARTITIONS - 1} LOOP
    EXECUTE format('CREATE TABLE s0.events_%s PARTITION OF s0.events FOR VALUES FROM (%L) TO (%L)',
                   y, make_date(y, 1, 1), make_date(y + 1, 1, 1));
  END LOOP;
END $$;
"""


def create_dataset(server: PostgresServer, per_database: int) -> dict[str, float]:
    """DATABASES databases of `per_database` objects; returns the seconds each phase took."""
    started = time.perf_counter()
    first = database_name(0)
    server.create_database(first)
    with server.connect(first) as conn:
        conn.execute(dataset_ddl(per_database))
        found = conn.execute(
            """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname LIKE 's%'"""
        ).fetchone()[0]
    if found != per_database:
        raise RuntimeError(f"{first} holds {found} objects, expected {per_database}")
    built = time.perf_counter()
    with server.connect() as conn:
        for n in range(1, DATABASES):
            conn.execute(f"CREATE DATABASE {database_name(n)} TEMPLATE {first} STRATEGY WAL_LOG")
    return {"first": built - started, "copies": time.perf_counter() - built}


def connection_config(server: PostgresServer, immuta_db: str, databases: list[str]) -> str:
    return provider_block(server) + connection_block(
        server.host, server.port, immuta_db, label="warehouse", include=Body(databases=databases)
    )


@dataclass
class Crawl:
    databases: int
    objects: int  # data_object_count in state
    provider_seconds: float  # the provider's create time (debug log)
    apply_seconds: float  # terraform apply, wall clock
    peak_mib: float  # provider process, during the apply
    provider_cpu: float  # CPU seconds, provider processes
    server_cpu: float  # CPU seconds, PostgreSQL

    @property
    def rate(self) -> float:
        return self.objects / self.provider_seconds if self.provider_seconds else 0.0


def crawl(
    server: PostgresServer, root: Path, databases: int, parallelism: int = 10, run: int = 0
) -> Crawl:
    label = f"immuta_{databases}db_{run}"
    server.create_database(label)
    names = [database_name(n) for n in range(databases)] or ["no_such_database"]
    log = root / f"{label}.log"
    tf = Terraform(root / label, env={"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(log)})
    tf.write(connection_config(server, label, names))
    tf.init()
    log.unlink(missing_ok=True)
    applied = terraform(
        tf, "apply", "-auto-approve", *flags(parallelism), server_pid=server.proc.pid
    )
    times = DONE.findall(log.read_text(errors="replace"))
    if len(times) != 1:
        raise RuntimeError(f"expected one 'apply ... done' line in {log}, found {len(times)}")
    state = json.loads((tf.workdir / "terraform.tfstate").read_text())
    count = state["resources"][0]["instances"][0]["attributes"]["data_object_count"]
    return Crawl(
        databases,
        int(count),
        float(times[0]),
        applied.seconds,
        applied.peak_kib / MIB,
        applied.provider_cpu,
        applied.server_cpu,
    )


def median_crawl(crawls: list[Crawl]) -> Crawl:
    """The run with the median provider time (its other figures come with it)."""
    return sorted(crawls, key=lambda c: c.provider_seconds)[len(crawls) // 2]


def measure(
    server: PostgresServer, sizes: list[int], parallelism: int = 10, repeat: int = 1
) -> tuple[Crawl, list[Crawl]]:
    """The baseline (no database) and one crawl per size (number of databases); with
    `repeat`, each is run that many times (a fresh Immuta database each) and the median kept.
    """
    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
        results = []
        for databases in [0, *sizes]:
            runs = [crawl(server, Path(tmp), databases, parallelism, n) for n in range(repeat)]
            results.append(median_crawl(runs))
        return results[0], results[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crawl", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--per-database", type=int, default=10_000)
    parser.add_argument("--databases", default="1,5,10", help="sizes, in databases (max 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (median kept)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.databases.split(",")]
    server = PostgresServer(17).start()
    try:
        made = create_dataset(server, args.per_database)
        print(
            f"data set: {DATABASES} x {args.per_database} objects; first database "
            f"{made['first']:.1f} s, {DATABASES - 1} copies {made['copies']:.1f} s"
        )
        baseline, crawls = measure(server, sizes, repeat=args.repeat)
    finally:
        server.stop()
    print(
        f"{'databases':>10}{'objects':>10}{'provider s':>12}{'objects/s':>11}{'apply s':>9}"
        f"{'peak MiB':>10}{'CPU provider':>14}{'CPU PG':>8}"
    )
    for c in [baseline, *crawls]:
        print(
            f"{c.databases:10}{c.objects:10}{c.provider_seconds:12.2f}{c.rate:11.0f}"
            f"{c.apply_seconds:9.2f}{c.peak_mib:10.1f}{c.provider_cpu:14.1f}{c.server_cpu:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
