"""Start the built provider executable the way go-plugin (Terraform) does, and talk to it."""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import select
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER_VERSION = "0.1.0"
PROVIDER_EXE = (
    REPO_ROOT
    / "dist/mirror/registry.terraform.io/immuta-pg/immuta"
    / PROVIDER_VERSION
    / "linux_amd64"
    / f"terraform-provider-immuta_v{PROVIDER_VERSION}"
)
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"


def plugin_env(extra: dict[str, str] | None = None, cookie: bool = True) -> dict[str, str]:
    """The environment go-plugin gives a plugin, minus anything stray from ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_", "PG", "AWS_", "IMMUTA_", "PLUGIN_"))
    }
    if cookie:
        env[MAGIC_COOKIE_KEY] = MAGIC_COOKIE
        env["PLUGIN_PROTOCOL_VERSIONS"] = "6"
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Handshake:
    core_version: str
    app_version: str
    network: str
    address: str
    protocol: str
    cert: str

    @classmethod
    def parse(cls, line: str) -> Handshake:
        parts = line.rstrip("\n").split("|")
        if len(parts) != 6:
            raise AssertionError(f"handshake line has {len(parts)} fields: {line!r}")
        return cls(*parts)

    @property
    def cert_der(self) -> bytes:
        text = self.cert + "=" * (-len(self.cert) % 4)  # go-plugin strips the padding
        return base64.b64decode(text)

    @property
    def cert_pem(self) -> bytes:
        return ssl.DER_cert_to_PEM_cert(self.cert_der).encode()

    @property
    def target(self) -> str:
        return f"unix:{self.address}"


class PluginProcess:
    """The provider executable started with the go-plugin environment."""

    def __init__(
        self,
        extra_env: dict[str, str] | None = None,
        timeout: float = 15,
        cwd: str | Path = "/",
        client_certificate: ClientCertificate | None = None,
        executable: str | Path = PROVIDER_EXE,
    ) -> None:
        """With `client_certificate`, PLUGIN_CLIENT_CERT announces it and channels present it.
        `executable` may be another plugin (another build, or the Go null provider)."""
        self.client_certificate = client_certificate
        if client_certificate is not None:
            extra_env = {**(extra_env or {}), "PLUGIN_CLIENT_CERT": client_certificate.cert_pem}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [str(executable)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=plugin_env(extra_env),
            cwd=str(cwd),
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise AssertionError(f"no handshake within {timeout} s: {self.stderr()}")
        self.handshake_line = self.proc.stdout.readline()
        if not self.handshake_line:
            self.close()
            raise AssertionError(f"plugin exited before the handshake: {self.stderr()}")
        self.handshake = Handshake.parse(self.handshake_line)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def channel(
        self, tls: bool | None = None, client: ClientCertificate | None = None
    ) -> grpc.Channel:
        """A channel as go-plugin opens it: TLS trusting the handshake cert when one is given,
        presenting `client` (default: the certificate this process was started with)."""
        if tls is None:
            tls = bool(self.handshake.cert)
        if not tls:
            return grpc.insecure_channel(self.handshake.target)
        client = client or self.client_certificate
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.handshake.cert_pem,
            private_key=client.key_pem.encode() if client else None,
            certificate_chain=client.cert_pem.encode() if client else None,
        )
        return grpc.secure_channel(
            self.handshake.target,
            credentials,
            options=[("grpc.ssl_target_name_override", "localhost")],
        )

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its socket folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=10)
        handshake = getattr(self, "handshake", None)
        if handshake and handshake.network == "unix" and os.path.isabs(handshake.address):
            if os.path.basename(handshake.address) == "plugin.sock":  # in our private folder
                shutil.rmtree(os.path.dirname(handshake.address), ignore_errors=True)
            else:  # go-plugin (the Go null provider) puts its socket in the temp folder itself
                with contextlib.suppress(OSError):
                    os.unlink(handshake.address)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> PluginProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ClientCertificate:
    cert_pem: str
    key_pem: str


def make_client_certificate(curve: str = "secp256r1") -> ClientCertificate:
    """A self-signed client certificate shaped like the one Terraform passes to its plugins.

    Terraform's own is P-521 (secp521r1); grpcio clients can only present P-256 keys.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP521R1() if curve == "secp521r1" else ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA512() if curve == "secp521r1" else hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ClientCertificate(
        cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()
    )
