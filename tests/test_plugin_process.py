"""The built provider executable as go-plugin starts it: handshake, socket, TLS, lifecycle."""

from __future__ import annotations

import os
import shutil
import signal
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
from harness.plugin import PROVIDER_EXE, PluginProcess, client_certificate_pem, plugin_env

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
    with PluginProcess({"PLUGIN_CLIENT_CERT": client_certificate_pem()}) as process:
        yield process


def test_refuses_to_start_without_the_magic_cookie() -> None:
    result = subprocess.run(
        [str(PROVIDER_EXE)],
        env=plugin_env(cookie=False),
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "This binary is a plugin" in result.stderr
    assert "started by Terraform" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_wrong_magic_cookie() -> None:
    result = subprocess.run(
        [str(PROVIDER_EXE)],
        env=plugin_env({"TF_PLUGIN_MAGIC_COOKIE": "nope"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
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


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
def test_another_user_cannot_connect(plugin: PluginProcess) -> None:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    address = plugin.handshake.address
    own = subprocess.run(
        [python, "-c", CONNECT_SCRIPT, address], capture_output=True, text=True, timeout=30
    )
    assert own.stdout.strip() == "CONNECTED"  # the probe itself works
    other = subprocess.run(
        [python, "-c", CONNECT_SCRIPT, address],
        capture_output=True,
        text=True,
        timeout=30,
        user="nobody",
        group="nogroup" if _group_exists("nogroup") else "nobody",
        extra_groups=[],
        cwd="/",
    )
    assert other.stdout.strip() in ("EACCES", "EPERM", "ECONNREFUSED"), other


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
