"""What planning a resource that holds a large MAP nested attribute costs the provider.

    python -m bench.nested_plan [--sizes 1000,10000,20000] [--runs 7] [--gc-threshold N]

The schema is the test provider's `nestedtest_directory` (tests/harness/nested_provider.py),
shaped like a resource holding many user mappings: `members`, a MAP of objects with optional
SINGLE `postgres` {mode (default "unset", one of three), username (case-insensitive)} and
`aws` {user_type (one of two), principal} objects, a validator on `postgres`, two computed
values and one kept by UseStateForUnknown. The prior state holds every entry with its
computed values. For each size it times, in this process and as CPU time (minimum of
--runs):

- plan_change with one entry changed, with nothing changed, and on create (no prior);
- validate_values of the configuration (every validator of every entry);
- PlanResourceChange's Python work for one changed entry: decode prior, proposed and
  config from msgpack, plan, encode the planned state;

and two baselines measured in the same run, so ratios survive a busy machine:
`copy.deepcopy` of the prior state (what planning used to start with) and msgpack's C
unpacking of it (the floor for reading the value at all). `--gc-threshold N` sets the
garbage collector's first threshold (Python's default: 700) before measuring.
"""

from __future__ import annotations

import argparse
import copy
import gc
import time
from collections.abc import Callable
from typing import Any

import msgpack
from harness.nested_provider import SCHEMA, effective_username

from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.plan import plan_change, validate_values
from tfprovider_immuta_pg.framework.values import UNKNOWN
from tfprovider_immuta_pg.protocol.codec import decode_msgpack, encode_msgpack

TYPE = SCHEMA.value_type
State = dict[str, Any]
CHANGED = "user1@example.com"


def member(i: int) -> State:
    """The configuration of member `i`."""
    postgres = (
        {"mode": "username", "username": f"User{i}"},
        None,
        {"mode": "none", "username": None},
    )[i % 3]
    aws = {"user_type": "iam_role", "principal": f"role-{i}"} if i % 2 else None
    return {"postgres": postgres, "aws": aws}


def values(size: int) -> tuple[State, State, State, State]:
    """Prior state, proposed new state and configuration with one member changed, and the
    configuration that changes nothing."""
    configs = {f"user{i}@example.com": member(i) for i in range(size)}
    stored = {
        name: {
            **copy.deepcopy(m),
            "effective_username": effective_username(name, m),
            "revision": 1,
            "created": f"write-{i}",
        }
        for i, (name, m) in enumerate(configs.items())
    }
    unknown = {"effective_username": None, "revision": None, "created": None}
    unchanged = {name: {**copy.deepcopy(m), **unknown} for name, m in configs.items()}
    changed = copy.deepcopy(unchanged)
    changed[CHANGED]["postgres"] = {"mode": "none", "username": None}
    proposed = copy.deepcopy(stored)
    proposed[CHANGED]["postgres"] = {"mode": "none", "username": None}
    top = {"store": "/s.json", "ports": None, "tags": None}
    policy = {"days": 30, "action": None}
    return (
        {**top, "id": "/s.json", "policy": policy, "members": stored},
        {**top, "id": "/s.json", "policy": policy, "members": proposed},
        {**top, "id": None, "policy": None, "members": changed},
        {**top, "id": None, "policy": None, "members": unchanged},
    )


def cpu_ms(work: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best * 1000


def measure(size: int, runs: int) -> dict[str, float]:
    prior, proposed, config, unchanged = values(size)
    wire = [encode_msgpack(v, TYPE) for v in (prior, proposed, config)]
    planned, _ = plan_change(SCHEMA, prior, proposed, config)
    unknown = [k for k, v in planned["members"].items() if v["revision"] is UNKNOWN]
    assert unknown == [CHANGED], unknown  # the benchmark plans what it claims
    assert plan_change(SCHEMA, prior, prior, unchanged)[0] == prior

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
    parser.add_argument("--gc-threshold", type=int, default=gc.get_threshold()[0])
    args = parser.parse_args(argv)
    gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: measure(size, args.runs) for size in sizes}
    deepcopy, biggest = "baseline: copy.deepcopy(prior)", sizes[-1]
    header = " | ".join(f"{s:,} entries" for s in sizes)
    print(f"gc threshold {gc.get_threshold()}")
    print(f"| CPU ms, min of {args.runs} | {header} | x deepcopy at {biggest:,} |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for label in results[biggest]:
        cells = " | ".join(f"{results[s][label]:.1f}" for s in sizes)
        ratio = results[biggest][label] / results[biggest][deepcopy]
        print(f"| {label} | {cells} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
