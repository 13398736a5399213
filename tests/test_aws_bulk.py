"""IAM principals in bulk: the provider's AwsClient against a real moto server, its calls
counted with boto3's event hooks.

Many names are resolved from the List{Roles,Users} pages (1000 per call), few with one
Get each; names not found yet are looked for again for a bounded time, since IAM is
eventually consistent right after a create.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from harness import MotoServer

from tfprovider_immuta_pg.immuta import aws
from tfprovider_immuta_pg.immuta.aws import AwsClient
from tfprovider_immuta_pg.immuta.settings import AwsSettings

# The 10,000 roles live in an account of their own (moto keeps one backend per account), so
# the other tests sharing this moto server list and get in an account of a few roles.
BULK_ACCOUNT = "210987654321"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})


def counted_client(
    moto: MotoServer, account: str | None = None
) -> tuple[AwsClient, collections.Counter]:
    """A provider AwsClient on moto (in `account`, else moto's default), and the IAM calls
    it makes (operation -> count)."""
    client = AwsClient(
        AwsSettings(
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            endpoint_url=moto.endpoint_url,
        ),
        "aws_access_key",
    )
    calls: collections.Counter = collections.Counter()

    def count(model, **_):
        calls[model.name] += 1

    def in_account(request, **_):
        request.headers["x-moto-account-id"] = account

    events = client.client("iam").meta.events
    events.register("before-call.iam", count)
    if account is not None:
        events.register("before-sign.iam", in_account)
    return client, calls


@pytest.fixture(scope="module")
def many_roles(moto_server: MotoServer) -> Iterator[dict[str, str]]:
    """10,000 IAM roles (made in moto's backend directly: 10,000 CreateRole calls would take
    minutes), removed afterwards: name -> ARN."""
    from moto.iam.models import iam_backends

    backend = iam_backends[BULK_ACCOUNT]["global"]
    prefix = f"bulk-{uuid.uuid4().hex[:6]}"
    made = {}
    for n in range(10_000):
        role = backend.create_role(
            role_name=f"{prefix}-{n}",
            assume_role_policy_document=TRUST,
            path="/",
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration=None,
        )
        made[role.name] = role.arn
    try:
        yield made
    finally:
        for name in made:
            backend.delete_role(name)


def test_ten_thousand_roles_cost_the_listing_pages_not_one_call_each(
    moto_server: MotoServer, many_roles: dict[str, str]
) -> None:
    client, calls = counted_client(moto_server, BULK_ACCOUNT)
    names = list(many_roles)
    wanted = names[:9_990] + [many_roles[names[9_995]], "no-such-role"]
    found = client.principal_arns("role", wanted, retry=False)
    assert calls == {"ListRoles": 10}, calls  # 10,000 roles in the account, 1000 per page
    assert found["no-such-role"] is None
    assert found[many_roles[names[9_995]]] == many_roles[names[9_995]], "an ARN matches itself"
    assert all(found[n] == many_roles[n] for n in names[:9_990])


def test_an_arn_of_another_path_or_account_is_not_the_role(
    moto_server: MotoServer, many_roles: dict[str, str]
) -> None:
    client, _ = counted_client(moto_server, BULK_ACCOUNT)
    name = next(iter(many_roles))
    other_account = many_roles[name].replace(BULK_ACCOUNT, "999999999999")
    other_path = many_roles[name].replace(":role/", ":role/elsewhere/")
    for looked_up in ([other_account, other_path], [other_account, other_path, *many_roles][:60]):
        found = client.principal_arns("role", looked_up, retry=False)
        assert found[other_account] is None and found[other_path] is None


def test_few_names_cost_one_get_each(moto_server: MotoServer, many_roles: dict[str, str]) -> None:
    client, calls = counted_client(moto_server, BULK_ACCOUNT)
    names = list(many_roles)[:3]
    found = client.principal_arns("role", [*names, "no-such-role"], retry=False)
    assert calls == {"GetRole": 4}, calls
    assert [found[n] for n in names] == [many_roles[n] for n in names]
    assert found["no-such-role"] is None
    assert len(names) + 1 <= aws.LIST_ABOVE


@pytest.mark.parametrize("count", [3, aws.LIST_ABOVE + 10], ids=["get", "list"])
def test_a_role_created_meanwhile_is_found_within_the_retry(
    moto_server: MotoServer, count: int
) -> None:
    """IAM answers NoSuchEntity for a while after a create: the look-up retries, a bounded
    number of times, and finds the role once it is there."""
    iam = moto_server.client("iam")
    prefix = f"late-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{n}" for n in range(count)]
    for name in names[1:]:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    late = threading.Timer(
        0.6, lambda: iam.create_role(RoleName=names[0], AssumeRolePolicyDocument=TRUST)
    )
    client, calls = counted_client(moto_server)
    started = time.monotonic()
    late.start()
    try:
        found = client.principal_arns("role", names, retry=True)
    finally:
        late.join()
    assert found[names[0]] is not None and all(found.values())
    assert time.monotonic() - started < aws.NO_SUCH_ENTITY_RETRY_SECONDS
    # The first pass over every name, then a few more (backoff 0.25, 0.5, 1 s) for the one
    # missing: by Get while it is one name, by listing while they were many.
    if count <= aws.LIST_ABOVE:
        assert calls.keys() == {"GetRole"} and count + 1 <= calls["GetRole"] <= count + 4
    else:
        assert calls.keys() == {"GetRole", "ListRoles"} or calls.keys() == {"ListRoles"}
        assert calls["ListRoles"] == 1 and 1 <= calls["GetRole"] <= 4, calls
    for name in names:
        iam.delete_role(RoleName=name)


def test_a_role_that_never_comes_is_given_up_after_the_retry(moto_server: MotoServer) -> None:
    client, calls = counted_client(moto_server)
    started = time.monotonic()
    found = client.principal_arns("role", ["never-created"], retry=True)
    took = time.monotonic() - started
    assert found == {"never-created": None}
    assert took <= aws.NO_SUCH_ENTITY_RETRY_SECONDS + 1
    assert 2 <= calls["GetRole"] <= 8, calls
