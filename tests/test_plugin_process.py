"""The built provider executable as go-plugin starts it: handshake, socket, TLS, lifecycle."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness.plugin import PROVIDER_EXE, PluginProcess, make_client_certificate, plugin_env

from tfprovider_immuta_pg.protocol.gen import (
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
    tfplugin6_pb2,
    tfplugin6_pb2_grpc,
)

pytestmark = pytest.mark.skipif(
    not PROVIDER_EXE.is_file(), reason=f"{PROVIDER_EXE} missing: run ./build.sh first"
)

SERVING = health_pb2.HealthCheckResponse.SERVING
SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty HTTP/2 SETTINGS

# A raw AF_UNIX connect; prints CONNECTED or the errno name.
CONNECT_SCRIPT = (
    "import errno, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as e:\n"
    "    print(errno.errorcode.get(e.errno, e.errno))\n"
    "else:\n"
    "    print('CONNECTED')\n"
)


def health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=10).status


def shutdown(channel: grpc.Channel) -> None:
    grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(
        grpc_controller_pb2.Empty(), timeout=10
    )


@pytest.fixture
def plugin():
    with PluginProcess() as process:
        yield process


@pytest.fixture(scope="module")
def tls_plugin():
    with PluginProcess(client_certificate=make_client_certificate()) as process:
        yield process


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The executable run with `env` until it exits (it should, at once)."""
    return subprocess.run(
        [str(PROVIDER_EXE)], env=env, capture_output=True, text=True, timeout=30, cwd="/"
    )


def test_refuses_to_start_without_the_magic_cookie() -> None:
    result = run_to_exit(plugin_env(cookie=False))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "This binary is a plugin" in result.stderr
    assert "started by Terraform" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_wrong_magic_cookie() -> None:
    result = run_to_exit(plugin_env({"TF_PLUGIN_MAGIC_COOKIE": "nope"}))
    assert result.returncode == 1
    assert "This binary is a plugin" in result.stderr


def test_handshake_line_and_private_socket_folder(plugin: PluginProcess) -> None:
    hs = plugin.handshake
    assert plugin.handshake_line.endswith("\n")
    assert (hs.core_version, hs.app_version, hs.network, hs.protocol) == ("1", "6", "unix", "grpc")
    assert hs.cert == ""  # no PLUGIN_CLIENT_CERT: plaintext
    sock = Path(hs.address)
    assert sock.is_absolute()
    assert stat.S_ISSOCK(sock.stat().st_mode)
    folder = sock.parent.stat()
    assert stat.S_IMODE(folder.st_mode) == 0o700
    assert folder.st_uid == os.geteuid()
    # Plaintext works when Terraform sent no client certificate.
    with plugin.channel(tls=False) as channel:
        assert health(channel) == SERVING
        schema = tfplugin6_pb2_grpc.ProviderStub(channel).GetMetadata(
            tfplugin6_pb2.GetMetadata.Request(), timeout=10
        )
    assert {r.type_name for r in schema.resources} >= {
        "immuta_postgres_connection",
        "immuta_user_mapping",
    }


def test_shutdown_exits_cleanly_and_prints_nothing_more(plugin: PluginProcess) -> None:
    folder = Path(plugin.handshake.address).parent
    with plugin.channel() as channel:
        shutdown(channel)
    assert plugin.wait(timeout=5) == 0
    assert plugin.proc.stdout.read() == ""  # the handshake was the only line on stdout
    assert not folder.exists()
    assert "Traceback" not in plugin.stderr()


def test_socket_folder_under_plugin_unix_socket_dir() -> None:
    base = tempfile.mkdtemp(prefix="sockdir", dir="/tmp")
    try:
        with PluginProcess({"PLUGIN_UNIX_SOCKET_DIR": base}) as process:
            sock = Path(process.handshake.address)
            assert sock.parent.parent == Path(base)
            assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
            with process.channel() as channel:
                assert health(channel) == SERVING
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_empty_plugin_unix_socket_dir_means_the_default_temp_folder(tmp_path: Path) -> None:
    # go-plugin (os.MkdirTemp("", ...)) treats an empty value as unset; the socket
    # path in the handshake must stay absolute whatever the plugin's cwd is.
    with PluginProcess({"PLUGIN_UNIX_SOCKET_DIR": ""}, cwd=tmp_path) as process:
        assert Path(process.handshake.address).is_absolute(), process.handshake.address


def _connect_as(address: str, user: str | None) -> str:
    """CONNECTED or the errno name of a raw AF_UNIX connect to address, as user."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    switch = {}
    if user is not None:
        group = "nogroup" if _group_exists("nogroup") else "nobody"
        switch = {"user": user, "group": group, "extra_groups": [], "cwd": "/"}
    result = subprocess.run(
        [python, "-c", CONNECT_SCRIPT, address],
        capture_output=True,
        text=True,
        timeout=30,
        **switch,
    )
    return result.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
def test_another_user_cannot_connect(plugin: PluginProcess) -> None:
    address = plugin.handshake.address
    assert _connect_as(address, None) == "CONNECTED"  # the probe itself works
    assert _connect_as(address, "nobody") in ("EACCES", "EPERM", "ECONNREFUSED")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
def test_another_user_cannot_reach_the_socket_with_tls(tls_plugin: PluginProcess) -> None:
    folder = Path(tls_plugin.handshake.address).parent
    sockets = sorted(p.name for p in folder.iterdir())
    assert sockets == ["plugin.sock"]  # no plaintext socket behind the TLS one
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in sockets:
        assert _connect_as(str(folder / name), None) == "CONNECTED"
        assert _connect_as(str(folder / name), "nobody") in ("EACCES", "EPERM", "ECONNREFUSED")


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_tls_with_client_cert(tls_plugin: PluginProcess) -> None:
    hs = tls_plugin.handshake
    assert hs.cert != ""
    assert "=" not in hs.cert  # base64 without padding
    cert = x509.load_der_x509_certificate(hs.cert_der)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
    with tls_plugin.channel(tls=True) as channel:
        assert health(channel) == SERVING


def test_tls_server_refuses_plaintext(tls_plugin: PluginProcess) -> None:
    with tls_plugin.channel(tls=False) as channel, pytest.raises(grpc.RpcError) as caught:
        health(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("presented", ["another certificate", "no certificate"])
def test_tls_refuses_a_client_without_the_announced_certificate(
    tls_plugin: PluginProcess, presented: str
) -> None:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls_plugin.handshake.cert_pem,
        **_client_credentials(make_client_certificate() if presented != "no certificate" else None),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    with (
        grpc.secure_channel(tls_plugin.handshake.target, credentials, options) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        health(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # The refusal is logged, and the front goes on serving the right client.
    with tls_plugin.channel() as channel:
        assert health(channel) == SERVING


def _client_credentials(client) -> dict[str, bytes]:
    if client is None:
        return {}
    return {"private_key": client.key_pem.encode(), "certificate_chain": client.cert_pem.encode()}


@pytest.mark.parametrize("right_certificate", [True, False])
def test_tls_takes_terraforms_p521_client_key(right_certificate: bool) -> None:
    """go-plugin's client key is ECDSA P-521, which grpcio cannot present: use OpenSSL."""
    announced = make_client_certificate("secp521r1")
    presented = announced if right_certificate else make_client_certificate("secp521r1")
    logging = {"TF_LOG": "warn"}
    with (
        PluginProcess(logging, client_certificate=announced) as process,
        tempfile.TemporaryDirectory() as d,
    ):
        pem = Path(d, "client.pem")
        pem.write_text(presented.cert_pem + presented.key_pem)
        context = ssl.create_default_context(cadata=process.handshake.cert_pem.decode())
        context.load_cert_chain(pem)
        context.set_alpn_protocols(["h2"])
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(process.handshake.address)
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "h2"  # grpc-go insists on it
                preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SETTINGS_FRAME
                if right_certificate:
                    tls.sendall(preface)
                    frame = tls.recv(9)
                    assert frame[3] == 0x04, frame  # the gRPC server's SETTINGS frame
                    with contextlib.suppress(ssl.SSLError):  # data after our close_notify
                        tls.unwrap()  # close_notify, as a client closing cleanly sends
                else:
                    # TLS 1.3: the client finishes first; the server's alert (or its
                    # closing the socket) arrives while the client sends or reads.
                    with pytest.raises((ssl.SSLError, ConnectionError)):
                        tls.sendall(preface)
                        tls.recv(9)
        cpu_before = _cpu_seconds(process.proc.pid)
        time.sleep(0.5)  # the front logs after the alert is on its way
        assert ("refused a plugin client" in process.stderr()) is not right_certificate
        # Once the session is closed the plugin idles (a bug once spun on close_notify).
        assert _cpu_seconds(process.proc.pid) - cpu_before < 0.1


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_damaged_client_certificate_stops_the_plugin() -> None:
    damaged = "-----BEGIN CERTIFICATE-----\nnot base64!\n"
    result = run_to_exit(plugin_env({"PLUGIN_CLIENT_CERT": damaged}))
    assert result.returncode == 1
    assert result.stdout == ""  # no handshake line: Terraform must not dial a plaintext plugin
    assert "PLUGIN_CLIENT_CERT holds no PEM certificate" in result.stderr


def test_stdio_stream_stays_open(tls_plugin: PluginProcess) -> None:
    with tls_plugin.channel() as channel:
        stream = grpc_stdio_pb2_grpc.GRPCStdioStub(channel).StreamStdio(
            grpc_stdio_pb2_grpc.google_dot_protobuf_dot_empty__pb2.Empty(), timeout=0.5
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(stream)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert tls_plugin.proc.poll() is None


def test_sigint_is_ignored_sigterm_stops(plugin: PluginProcess) -> None:
    folder = Path(plugin.handshake.address).parent
    plugin.proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert plugin.proc.poll() is None, "SIGINT killed the plugin; Terraform relies on it living"
    with plugin.channel() as channel:
        assert health(channel) == SERVING
    plugin.proc.send_signal(signal.SIGTERM)
    code = plugin.wait(timeout=5)
    assert code in (0, -signal.SIGTERM)
    if code == 0:
        assert not folder.exists()


def test_serves_without_the_development_dependencies(tmp_path: Path) -> None:
    """grpcio, hpack, h2 and cryptography are test tools: the provider must not import them.

    A sitecustomize on PYTHONPATH makes each of them unimportable in the plugin process;
    the plugin must still complete mutual TLS, serve its schema and shut down.
    """
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'grpc', 'grpc_health', 'hpack', 'h2', 'hyperframe',\n"
        "                                   'cryptography'}:\n"
        "            raise ImportError(f'{name} is a development dependency')\n"
        "sys.meta_path.insert(0, Refuse())\n"
    )
    client = make_client_certificate()
    with PluginProcess({"PYTHONPATH": str(tmp_path)}, client_certificate=client) as process:
        with process.channel() as channel:
            schema = tfplugin6_pb2_grpc.ProviderStub(channel).GetProviderSchema(
                tfplugin6_pb2.GetProviderSchema.Request(), timeout=10
            )
            assert "immuta_user_mapping" in schema.resource_schemas
            shutdown(channel)
        assert process.wait(timeout=10) == 0
        assert "development dependency" not in process.stderr()
