"""What planning a resource that holds a large MAP nested attribute costs the provider.

    python -m bench.nested_plan [--sizes 1000,10000,20000] [--runs 7]

The schema is shaped like a resource holding many user mappings: `mappings`, a MAP of
objects with optional SINGLE `postgres` {mode (default "unset", one of three), username
(case-insensitive)} and `aws` {user_type, principal} objects, two computed values and one
kept by UseStateForUnknown; the prior state holds every entry with its computed values.
For each size it times, in this process and as CPU time (minimum of --runs):

- plan_change with one entry changed, with nothing changed, and on create (no prior);
- validate_values of the configuration (every validator of every entry);
- PlanResourceChange's Python work for one changed entry: decode prior, proposed and
  config from msgpack, plan, encode the planned state;

and two baselines measured in the same run, so ratios survive a busy machine:
`copy.deepcopy` of the prior state (what planning used to start with) and msgpack's C
unpacking of it (the floor for reading the value at all).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

import msgpack

from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.plan import plan_change, validate_values
from tfprovider_immuta_pg.framework.schema import (
    MAP,
    Attribute,
    Block,
    Check,
    NestedAttribute,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from tfprovider_immuta_pg.framework.types import BOOL, STRING
from tfprovider_immuta_pg.framework.values import UNKNOWN
from tfprovider_immuta_pg.protocol.codec import decode_msgpack, encode_msgpack

ENTRY = {
    "postgres": NestedAttribute(
        "PostgreSQL.",
        optional=True,
        attributes={
            "mode": Attribute(
                STRING, default="unset", validators=[OneOf(("username", "unset", "none"))]
            ),
            "username": Attribute(
                STRING,
                optional=True,
                semantically_equal=lambda a, b: a.casefold() == b.casefold(),
                validators=[Check(lambda v: None if v.strip() else "blank", "a username")],
            ),
        },
    ),
    "aws": NestedAttribute(
        "AWS.",
        optional=True,
        attributes={
            "user_type": Attribute(
                STRING, required=True, validators=[OneOf(("iam_role", "iam_user", "unset"))]
            ),
            "principal": Attribute(STRING, optional=True),
        },
    ),
    "postgres_user_found": Attribute(BOOL, computed=True),
    "effective_postgres_username": Attribute(STRING, computed=True),
    "aws_principal_arn": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
}
SCHEMA = Schema(
    Block(
        attributes={
            "connection_id": Attribute(STRING, required=True, plan_modifiers=[RequiresReplace()]),
            "id": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
            "mappings": NestedAttribute("By user.", required=True, nesting=MAP, attributes=ENTRY),
        }
    )
)
TYPE = SCHEMA.value_type


def entry(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration and the prior state of entry `i`."""
    postgres = (
        {"mode": "username", "username": f"User{i}"},
        None,
        {"mode": "none", "username": None},
    )[i % 3]
    aws = {"user_type": "iam_role", "principal": f"role-{i}"} if i % 2 else None
    config = {
        "postgres": postgres,
        "aws": aws,
        "postgres_user_found": None,
        "effective_postgres_username": None,
        "aws_principal_arn": None,
    }
    state = {
        **copy.deepcopy(config),
        "postgres_user_found": i % 3 != 2,
        "effective_postgres_username": f"user{i}" if i % 3 != 2 else None,
        "aws_principal_arn": f"arn:aws:iam::111122223333:role/role-{i}" if aws else None,
    }
    return config, state


State = dict[str, Any]


def values(size: int) -> tuple[State, State, State]:
    """Prior state, proposed new state and configuration with entry 1 changed."""
    pairs = {f"user{i}@example.com": entry(i) for i in range(size)}
    configured: dict[str, State] = {k: c for k, (c, _) in pairs.items()}
    stored: dict[str, State] = {k: s for k, (_, s) in pairs.items()}
    change = {"mode": "none", "username": None}
    configured["user1@example.com"]["postgres"] = change
    proposed = copy.deepcopy(stored)
    proposed["user1@example.com"]["postgres"] = dict(change)
    return (
        {"connection_id": "c", "id": "c", "mappings": stored},
        {"connection_id": "c", "id": "c", "mappings": proposed},
        {"connection_id": "c", "id": None, "mappings": configured},
    )


def cpu_ms(work: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best * 1000


def measure(size: int, runs: int) -> dict[str, float]:
    prior, proposed, config = values(size)
    unchanged = copy.deepcopy(config)
    unchanged["mappings"]["user1@example.com"]["postgres"] = entry(1)[0]["postgres"]
    wire = [encode_msgpack(v, TYPE) for v in (prior, proposed, config)]
    planned, _ = plan_change(SCHEMA, prior, proposed, config)
    unknown = [k for k, v in planned["mappings"].items() if v["postgres_user_found"] is UNKNOWN]
    assert unknown == ["user1@example.com"], unknown  # the benchmark plans what it claims

    def request() -> None:
        prior_, proposed_, config_ = (decode_msgpack(w, TYPE) for w in wire)
        encode_msgpack(plan_change(SCHEMA, prior_, proposed_, config_)[0], TYPE)

    return {
        "plan, one entry changed": cpu_ms(
            lambda: plan_change(SCHEMA, prior, proposed, config), runs
        ),
        "plan, nothing changed": cpu_ms(lambda: plan_change(SCHEMA, prior, prior, unchanged), runs),
        "plan, create": cpu_ms(lambda: plan_change(SCHEMA, None, config, config), runs),
        "validate": cpu_ms(lambda: validate_values(SCHEMA, config, Diagnostics()), runs),
        "PlanResourceChange work (decode 3, plan, encode)": cpu_ms(request, runs),
        "baseline: copy.deepcopy(prior)": cpu_ms(lambda: copy.deepcopy(prior), runs),
        "baseline: msgpack.unpackb(prior)": cpu_ms(lambda: msgpack.unpackb(wire[0]), runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,20000")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: measure(size, args.runs) for size in sizes}
    deepcopy, biggest = "baseline: copy.deepcopy(prior)", sizes[-1]
    header = " | ".join(f"{s:,} entries" for s in sizes)
    print(f"| CPU ms, min of {args.runs} | {header} | x deepcopy at {biggest:,} |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for label in results[biggest]:
        cells = " | ".join(f"{results[s][label]:.1f}" for s in sizes)
        ratio = results[biggest][label] / results[biggest][deepcopy]
        print(f"| {label} | {cells} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
