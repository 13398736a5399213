"""Concurrent applies from separate Terraform states against one Immuta database.

Two working directories (two state files, two provider processes) race, round after round:
1. both register the same display name (in odd rounds spelled in another case): exactly one
   wins, the other fails naming the registration that exists; the store holds one
   connection with exactly the winner's objects;
2. both map one IAM role (moto) to a different Immuta user on one registered rds
   connection: exactly one wins, the other fails naming the user that holds the role.

Each round checks row counts (nothing duplicated, nothing lost) and destroys the winner.
The directories are initialised once; applies and destroys skip refresh (-refresh=false)
to keep a round short. `-s` prints the rounds, the winners and the timings.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from harness import (
    Body,
    Database,
    MotoServer,
    Result,
    Terraform,
    connection_block,
    provider_block,
    resource,
)
from harness.store_dump import store_counts, store_dump

ROUNDS = 20
FAST = ("-auto-approve", "-no-color", "-input=false", "-refresh=false")


def provider(db: Database, moto: MotoServer | None = None) -> str:
    if moto is None:
        return provider_block(db.server)
    return provider_block(db.server, aws=moto.aws_block())


def connection(db: Database, display_name: str, deployment: str = "self_managed") -> str:
    return connection_block(db.host, db.port, db.name, display_name, deployment_type=deployment)


def race(contenders: list[Terraform]) -> list[Result]:
    """Both applies at once (released together by a barrier)."""
    barrier = threading.Barrier(len(contenders))
    results: list[Result | None] = [None] * len(contenders)

    def run(n: int) -> None:
        barrier.wait()
        results[n] = contenders[n].run("apply", *FAST, check=False)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results  # type: ignore[return-value]


def one_winner(results: list[Result]) -> int:
    codes = [r.returncode for r in results]
    assert sorted(codes) == [0, 1], [r.output for r in results]
    for result in results:
        assert "Traceback" not in result.output
        assert "Unexpected provider error" not in result.output
    return codes.index(0)


def state_resources(tf: Terraform) -> dict[str, dict]:
    """type.name -> attributes, read from the state file (`terraform show` would start the
    provider once more per round)."""
    text = tf.state_file_text()
    found = {}
    for entry in json.loads(text).get("resources", []) if text else []:
        for instance in entry["instances"]:
            found[f"{entry['type']}.{entry['name']}"] = instance["attributes"]
    return found


def report(title: str, winners: Counter, seconds: list[float]) -> None:
    print(
        f"\n{title}: {len(seconds)} rounds, exactly one winner each "
        f"(directory 0 won {winners[0]}, directory 1 won {winners[1]}); "
        f"round {min(seconds):.1f}-{max(seconds):.1f} s, total {sum(seconds):.0f} s"
    )


def test_same_display_name_from_two_states(immuta: Database, tmp_path: Path) -> None:
    contenders = [Terraform(tmp_path / f"c{n}") for n in range(2)]
    for tf in contenders:
        tf.write(provider(immuta) + connection(immuta, "Shared"))
        tf.init()
    winners: Counter = Counter()
    seconds = []
    for round_ in range(ROUNDS):
        # Odd rounds: the second directory spells the name in capitals.
        names = ["Shared", "SHARED" if round_ % 2 else "Shared"]
        for tf, name in zip(contenders, names, strict=True):
            tf.write(provider(immuta) + connection(immuta, name))
        started = time.monotonic()
        results = race(contenders)
        winner = one_winner(results)
        winners[winner] += 1
        loser = results[1 - winner]
        assert f"A connection named '{names[winner]}' is already registered" in loser.text
        assert "terraform import" in loser.text
        assert state_resources(contenders[1 - winner]) == {}

        state = state_resources(contenders[winner])["immuta_postgres_connection.main"]
        counts = store_counts(immuta)
        assert counts["connections"] == 1
        assert counts["data_objects"] == state["data_object_count"]
        assert counts["crawled_databases"] == len(state["databases"])
        assert counts["user_mappings"] == 0
        with immuta.connect() as conn:
            (key,) = conn.execute("SELECT connection_key FROM immuta.connections").fetchone()
        assert key == names[winner]

        contenders[winner].run("destroy", *FAST)
        assert store_dump(immuta) == "", "the winner's destroy leaves nothing"
        seconds.append(time.monotonic() - started)
    report("same display name", winners, seconds)


def test_one_iam_role_for_two_users_from_two_states(
    immuta: Database, moto_server: MotoServer, tmp_path: Path
) -> None:
    role = f"Shared-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": []}
    arn = moto_server.client("iam").create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    owner = Terraform(tmp_path / "owner")
    owner.write(provider(immuta, moto_server) + connection(immuta, "Aurora", "rds"))
    owner.apply()
    connection_id = owner.resources()["immuta_postgres_connection.main"]["id"]
    baseline = store_counts(immuta)
    contenders = []
    for n in range(2):
        tf = Terraform(tmp_path / f"c{n}")
        tf.write(
            provider(immuta, moto_server)
            + resource(
                "immuta_user_mapping",
                "m",
                connection_id=connection_id,
                immuta_user=f"user{n}",
                aws=Body(user_type="iam_role", principal=role),
            )
        )
        tf.init()
        contenders.append(tf)
    winners: Counter = Counter()
    seconds = []
    for _ in range(ROUNDS):
        started = time.monotonic()
        results = race(contenders)
        winner = one_winner(results)
        winners[winner] += 1
        loser = results[1 - winner]
        assert f"IAM role '{role}' is already mapped to 'user{winner}'" in loser.text
        assert state_resources(contenders[1 - winner]) == {}

        counts = store_counts(immuta)
        assert counts == {**baseline, "user_mappings": 1}
        with immuta.connect() as conn:
            rows = conn.execute(
                "SELECT immuta_user, aws_user_type, aws_principal_arn FROM immuta.user_mappings"
            ).fetchall()
        assert rows == [(f"user{winner}", "iam_role", arn)]

        contenders[winner].run("destroy", *FAST)
        assert store_counts(immuta) == baseline
        seconds.append(time.monotonic() - started)
    report("one IAM role, two users", winners, seconds)
    owner.destroy()
    assert store_dump(immuta) == ""
