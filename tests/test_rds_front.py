"""The RDS IAM auth test front: token checks as RDS makes them, and the relay to PostgreSQL 17."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from harness import Key, PostgresServer, RdsFront, check_token

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
USER = "postgres"


def make_token(
    port: int,
    user: str = USER,
    host: str = "127.0.0.1",
    region: str = REGION,
    akid: str = AKID,
    secret: str = SECRET,
    session_token: str | None = None,
) -> str:
    """An RDS IAM auth token as boto3 makes it (no network call)."""
    rds = boto3.client(
        "rds",
        region_name=region,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
    )
    return rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region)


@pytest.fixture
def front(pg17: PostgresServer) -> Iterator[RdsFront]:
    with RdsFront(pg17, region=REGION, keys={AKID: SECRET}) as f:
        yield f


def connect(front: RdsFront, password: str, user: str = USER, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=front.port,
        user=user,
        password=password,
        dbname="postgres",
        sslmode="prefer",
        connect_timeout=5,
        autocommit=True,
        **kwargs,
    )


def assert_refused(front: RdsFront, password: str, reason: str, user: str = USER) -> None:
    with pytest.raises(psycopg.OperationalError) as err:
        connect(front, password, user)
    assert f'FATAL:  PAM authentication failed for user "{user}"' in str(err.value)
    attempt = front.attempts[-1]
    assert (attempt.user, attempt.ok) == (user, False)
    assert reason in attempt.reason


def test_valid_token_is_accepted_and_relayed(front: RdsFront) -> None:
    with connect(front, make_token(front.port)) as conn:
        user, version = conn.execute("SELECT current_user, version()").fetchone()
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("17")
    assert user == USER
    assert version.startswith("PostgreSQL 17")
    [attempt] = front.attempts
    assert attempt.ok and attempt.signature_verified
    assert (attempt.user, attempt.database, attempt.access_key_id) == (USER, "postgres", AKID)


def test_sslmode_disable_and_several_concurrent_clients(front: RdsFront) -> None:
    results: list[int] = []

    def client(n: int) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=front.port, user=USER, dbname="postgres",
            password=make_token(front.port), sslmode="disable", connect_timeout=5,
        ) as conn:  # fmt: skip
            results.append(conn.execute("SELECT %s::int FROM pg_sleep(0.2)", (n,)).fetchone()[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(6))
    assert time.monotonic() - started < 1.2  # served side by side, not one after another
    assert len(front.accepted(USER)) == 6


def test_cancel_request_reaches_the_upstream(front: RdsFront) -> None:
    with connect(front, make_token(front.port)) as conn:
        timer = threading.Timer(0.3, conn.cancel_safe)
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")
        timer.join()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_upstream_errors_reach_the_client(front: RdsFront) -> None:
    with pytest.raises(psycopg.OperationalError, match='database "nope" does not exist'):
        psycopg.connect(
            host="127.0.0.1", port=front.port, user=USER, dbname="nope",
            password=make_token(front.port), connect_timeout=5,
        )  # fmt: skip


def test_expired_token_is_refused(pg17: PostgresServer) -> None:
    later = RdsFront(pg17, keys={AKID: SECRET}, clock=lambda: time.time() + 901)
    with later:
        assert_refused(later, make_token(later.port), "token expired")


def raw_login(port: int, user: str, password: str) -> tuple[bytes, dict[str, str]]:
    """Log in over a bare socket; (auth request seen, fields of the ErrorResponse)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0postgres\0\0"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        auth = sock.recv(9)
        secret = password.encode() + b"\0"
        sock.sendall(b"p" + struct.pack("!i", len(secret) + 4) + secret)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data[:1] == b"E", data
    fields = data[5:].split(b"\0")
    return auth, {f[:1].decode(): f[1:].decode() for f in fields if f}


def test_refusal_is_a_fatal_28000_error_response_then_close(front: RdsFront) -> None:
    auth, fields = raw_login(front.port, "postgres", "not a token")
    assert auth == b"R" + struct.pack("!ii", 8, 3)  # AuthenticationCleartextPassword
    assert fields == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "28000",
        "M": 'PAM authentication failed for user "postgres"',
    }


def test_token_dated_far_in_the_past_is_refused(front: RdsFront) -> None:
    token = make_token(front.port)
    date = token.split("X-Amz-Date=")[1][:16]
    token = token.replace(date, "20200101T000000Z").replace(f"%2F{date[:8]}%2F", "%2F20200101%2F")
    assert_refused(front, token, "token expired")


def test_tampered_signature_is_refused(front: RdsFront) -> None:
    token = make_token(front.port)
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert_refused(front, flipped, "signature does not match")


def test_token_for_another_host_or_port_is_refused(front: RdsFront) -> None:
    assert_refused(front, make_token(front.port + 1), "not '127.0.0.1:")
    assert_refused(front, make_token(front.port, host="localhost"), "is for 'localhost:")


def test_token_for_another_user_is_refused(front: RdsFront) -> None:
    assert_refused(front, make_token(front.port, user="alice"), "DBUser 'alice'")


def test_token_for_another_region_is_refused(front: RdsFront) -> None:
    assert_refused(front, make_token(front.port, region="eu-west-1"), "region 'eu-west-1'")


def test_token_for_another_action_is_refused(front: RdsFront) -> None:
    token = make_token(front.port).replace("Action=connect", "Action=login")
    assert_refused(front, token, "Action is 'login'")


def test_a_plain_password_is_refused(front: RdsFront) -> None:
    assert_refused(front, PostgresServer.password, "malformed token")


def test_refuse_all(pg17: PostgresServer) -> None:
    with RdsFront(pg17, keys={AKID: SECRET}, refuse_all="testing refusals") as f:
        assert_refused(f, make_token(f.port), "testing refusals")


# ---------------------------------------------------------------------- check_token alone


def verdict(token: str, port: int, lookup=lambda akid: None, **kwargs):
    args = {"user": USER, "host": "127.0.0.1", "port": port, "region": REGION, **kwargs}
    return check_token(token, lookup=lookup, **args)


def test_unknown_secret_checks_everything_but_the_signature() -> None:
    v = verdict(make_token(5432), 5432)
    assert (v.reason, v.signature_verified, v.access_key_id) == (None, False, AKID)
    assert "region" in verdict(make_token(5432, region="eu-west-1"), 5432).reason


def test_unknown_secret_refused_when_signatures_are_required(pg17: PostgresServer) -> None:
    with RdsFront(pg17, require_signature=True) as f:
        assert_refused(f, make_token(f.port), f"secret of access key {AKID} unknown")


def test_temporary_credentials_need_their_session_token() -> None:
    key = Key("temp-secret", "the-session-token")
    good = make_token(5432, akid="ASIATEMP", secret=key.secret, session_token=key.session_token)
    v = verdict(good, 5432, lookup={"ASIATEMP": key}.get)
    assert (v.reason, v.signature_verified) == (None, True)
    other = make_token(5432, akid="ASIATEMP", secret=key.secret, session_token="another")
    assert "security token" in verdict(other, 5432, lookup={"ASIATEMP": key}.get).reason
    wrong_secret = Key("not-the-secret", key.session_token)
    assert verdict(good, 5432, lookup={"ASIATEMP": wrong_secret}.get).reason == (
        "signature does not match"
    )


def test_expires_over_900_seconds_is_refused() -> None:
    token = make_token(5432).replace("X-Amz-Expires=900", "X-Amz-Expires=3600")
    assert "X-Amz-Expires 3600" in verdict(token, 5432).reason


def test_usernames_needing_escapes_verify() -> None:
    user = "Ops Admin+1@example.com/ü"
    v = verdict(make_token(5432, user=user), 5432, lookup={AKID: Key(SECRET)}.get, user=user)
    assert (v.reason, v.signature_verified) == (None, True)
