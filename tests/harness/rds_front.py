"""A stand-in for an RDS/Aurora endpoint with IAM database authentication.

`RdsFront` listens on 127.0.0.1:<free port> and speaks the PostgreSQL wire protocol (v3).
Each client is asked for a cleartext password, which is checked as RDS checks an IAM auth
token (`check_token`); an accepted client is relayed, as the same user, to a real PostgreSQL
server through its unix socket (trusted there), and bytes are piped both ways. Every attempt
is recorded in `front.attempts`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote

PROTOCOL_3_0 = 196608
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_EXPIRES = 900
CLOCK_SKEW = 300  # seconds a token may be dated in the future


@dataclass(frozen=True)
class Key:
    """What the front knows about an access key: its secret and, if temporary, its token."""

    secret: str
    session_token: str | None = None


KeyLookup = Callable[[str], Key | None]


@dataclass
class Verdict:
    reason: str | None  # None: accepted
    signature_verified: bool = False
    access_key_id: str | None = None


@dataclass
class Attempt:
    user: str
    database: str
    ok: bool
    reason: str | None
    signature_verified: bool
    access_key_id: str | None
    token: str  # the password the client sent (a secret: tests scan outputs for it)


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check_token(
    token: str,
    *,
    user: str,
    host: str,
    port: int,
    region: str,
    lookup: KeyLookup,
    now: float | None = None,
) -> Verdict:
    """Check `token` as RDS does for a connection of `user` to host:port in `region`."""
    endpoint, sep, query = token.partition("/?")
    if not sep:
        return Verdict("malformed token: not HOST:PORT/?QUERY")
    params = dict(parse_qsl(query, keep_blank_values=True))
    expected = host if port == 443 else f"{host}:{port}"
    if endpoint != expected:
        return Verdict(f"token is for {endpoint!r}, not {expected!r}")
    if params.get("Action") != "connect":
        return Verdict(f"Action is {params.get('Action')!r}, not 'connect'")
    if params.get("DBUser") != user:
        return Verdict(f"DBUser {params.get('DBUser')!r} is not the login user {user!r}")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return Verdict(f"algorithm {params.get('X-Amz-Algorithm')!r} is not AWS4-HMAC-SHA256")
    if params.get("X-Amz-SignedHeaders") != "host":
        return Verdict(f"signed headers {params.get('X-Amz-SignedHeaders')!r} are not 'host'")
    scope = params.get("X-Amz-Credential", "").split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return Verdict(f"malformed credential scope {params.get('X-Amz-Credential')!r}")
    akid, day, token_region, service = scope[:4]
    if service != "rds-db":
        return Verdict(f"service {service!r} is not 'rds-db'", access_key_id=akid)
    if token_region != region:
        return Verdict(f"token region {token_region!r} is not {region!r}", access_key_id=akid)
    try:
        amz_date = params["X-Amz-Date"]
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        expires = int(params["X-Amz-Expires"])
    except (KeyError, ValueError):
        return Verdict("missing or malformed X-Amz-Date/X-Amz-Expires", access_key_id=akid)
    if day != amz_date[:8]:
        return Verdict(f"credential date {day} is not the signing date", access_key_id=akid)
    if not 0 < expires <= MAX_EXPIRES:
        return Verdict(f"X-Amz-Expires {expires} is outside 1..{MAX_EXPIRES}", access_key_id=akid)
    now = time.time() if now is None else now
    if now > signed_at + expires:
        return Verdict(f"token expired {now - signed_at - expires:.0f} s ago", access_key_id=akid)
    if signed_at > now + CLOCK_SKEW:
        return Verdict("token is dated in the future", access_key_id=akid)
    key = lookup(akid)
    if key is None:  # e.g. temporary credentials the test cannot see: all else was checked
        return Verdict(None, signature_verified=False, access_key_id=akid)
    if key.session_token is not None and params.get("X-Amz-Security-Token") != key.session_token:
        return Verdict("security token does not belong to the access key", access_key_id=akid)
    canonical_query = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        ["GET", "/", canonical_query, f"host:{expected}", "", "host", hashlib.sha256().hexdigest()]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            "/".join(scope[1:]),
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    signing_key = ("AWS4" + key.secret).encode()
    for part in (day, token_region, service, "aws4_request"):
        signing_key = _hmac(signing_key, part)
    signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, params.get("X-Amz-Signature", "")):
        return Verdict("signature does not match", access_key_id=akid)
    return Verdict(None, signature_verified=True, access_key_id=akid)


# ---------------------------------------------------------------------- wire protocol


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        data += chunk
    return data


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    """One typed message: (type byte, whole message including type and length)."""
    head = _recv_exact(sock, 5)
    (length,) = struct.unpack("!i", head[1:])
    return head[:1], head + _recv_exact(sock, length - 4)


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _error(message: str, code: str = "28000") -> bytes:
    fields = [b"SFATAL", b"VFATAL", b"C" + code.encode(), b"M" + message.encode()]
    return _message(b"E", b"\0".join(fields) + b"\0\0")


def _startup_packet(params: dict[str, str]) -> bytes:
    body = struct.pack("!i", PROTOCOL_3_0)
    body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


class RdsFront:
    """An RDS-like PostgreSQL endpoint with IAM auth, relaying to `upstream`'s unix socket.

    `keys` maps access key IDs to secrets (str) or `Key`s; `lookup` is asked for keys not in
    it (e.g. temporary credentials from moto). `authorize(access_key_id, user)` may refuse a
    verified token, as an IAM policy without rds-db:connect would. `refuse_all` (a reason)
    refuses every client. `clock` is the front's idea of now (shift it to expire tokens).
    """

    def __init__(
        self,
        upstream,  # harness PostgresServer (or anything with .socket_dir and .port)
        *,
        hostname: str = "127.0.0.1",
        region: str = "us-east-1",
        keys: dict[str, str | Key] | None = None,
        lookup: KeyLookup | None = None,
        authorize: Callable[[str | None, str], str | None] | None = None,
        require_signature: bool = False,
        refuse_all: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream_socket = str(Path(upstream.socket_dir) / f".s.PGSQL.{upstream.port}")
        self.hostname, self.region = hostname, region
        self.keys: dict[str, Key] = {}
        for akid, key in (keys or {}).items():
            self.register_key(akid, key)
        self.lookup, self.authorize = lookup, authorize
        self.require_signature, self.refuse_all, self.clock = require_signature, refuse_all, clock
        self.attempts: list[Attempt] = []
        self.port: int | None = None
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def register_key(self, access_key_id: str, key: str | Key) -> None:
        self.keys[access_key_id] = Key(key) if isinstance(key, str) else key

    def _key(self, access_key_id: str) -> Key | None:
        found = self.keys.get(access_key_id)
        return found if found or self.lookup is None else self.lookup(access_key_id)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RdsFront:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> RdsFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="rds-front")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            self._spawn(self._serve, client)

    def _track(self, sock: socket.socket, add: bool = True) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(sock)

    # ------------------------------------------------------------------ one client
    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client)
        try:
            client.settimeout(30)
            params = self._startup(client)
            if params is None:
                return
            user = params.get("user", "")
            database = params.get("database") or user
            client.sendall(_message(b"R", struct.pack("!i", 3)))  # AuthenticationCleartextPassword
            kind, msg = _read_message(client)
            token = msg[5:].rstrip(b"\0").decode(errors="replace") if kind == b"p" else ""
            verdict = self._verify(token, user)
            self.attempts.append(
                Attempt(
                    user,
                    database,
                    verdict.reason is None,
                    verdict.reason,
                    verdict.signature_verified,
                    verdict.access_key_id,
                    token,
                )
            )
            if verdict.reason is not None:
                client.sendall(_error(f'PAM authentication failed for user "{user}"'))
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._track(upstream)
            upstream.connect(self.upstream_socket)
            upstream.sendall(_startup_packet(params))
            kind, msg = _read_message(upstream)
            client.sendall(msg)  # AuthenticationOk (trust), or the upstream's ErrorResponse
            if kind != b"R" or struct.unpack("!i", msg[5:9])[0] != 0:
                return
            client.settimeout(None)
            self._pipe(client, upstream)
        except (OSError, ConnectionError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._track(sock, add=False)
                    sock.close()

    def _startup(self, client: socket.socket) -> dict[str, str] | None:
        """Read the startup packet (declining SSL and GSS encryption); None: nothing to relay."""
        while True:
            (length,) = struct.unpack("!i", _recv_exact(client, 4))
            body = _recv_exact(client, length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            if code == CANCEL_REQUEST:  # pass it on: the key data came from the upstream
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
                    up.connect(self.upstream_socket)
                    up.sendall(struct.pack("!i", length) + body)
                return None
            if code >> 16 != 3:
                client.sendall(_error(f"unsupported frontend protocol {code >> 16}", "0A000"))
                return None
            if code & 0xFFFF:  # a newer 3.x minor: settle on 3.0, as the server would
                client.sendall(_message(b"v", struct.pack("!ii", PROTOCOL_3_0, 0)))
            items = body[4:].split(b"\0")
            params: dict[str, str] = {}
            for name, value in zip(items[::2], items[1::2], strict=False):
                if not name:
                    break
                if not name.startswith(b"_pq_."):  # protocol extensions: not for 3.0
                    params[name.decode()] = value.decode()
            return params

    def _verify(self, token: str, user: str) -> Verdict:
        if self.refuse_all:
            return Verdict(self.refuse_all)
        verdict = check_token(
            token,
            user=user,
            host=self.hostname,
            port=self.port or 0,
            region=self.region,
            lookup=self._key,
            now=self.clock(),
        )
        if verdict.reason is None and self.require_signature and not verdict.signature_verified:
            verdict.reason = f"secret of access key {verdict.access_key_id} unknown"
        if verdict.reason is None and self.authorize is not None:
            verdict.reason = self.authorize(verdict.access_key_id, user)
        return verdict

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while True:
            readable, _, _ = select.select(list(peers), [], [])
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)

    # ------------------------------------------------------------------ assertions
    def accepted(self, user: str | None = None) -> list[Attempt]:
        return [a for a in self.attempts if a.ok and (user is None or a.user == user)]

    def refused(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"
