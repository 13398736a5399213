"""The pure-Python AutoMTLS server certificate, checked against `cryptography` and real gRPC."""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tfprovider_immuta_pg.protocol.tls import ServerCertificate, generate_certificate


@pytest.fixture(scope="module")
def generated() -> ServerCertificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def cert(generated: ServerCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(generated.cert_pem)


def test_pem_and_der_are_the_same_certificate(generated, cert) -> None:
    assert cert.public_bytes(serialization.Encoding.DER) == generated.cert_der
    assert x509.load_der_x509_certificate(generated.cert_der) == cert
    assert cert.version is x509.Version.v3


def test_signature_verifies_with_own_public_key(cert) -> None:
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    cert.verify_directly_issued_by(cert)  # self-signed: issuer == subject, signature checks


def test_many_certificates_verify() -> None:
    """Catches rare encodings (short r or s, serials and coordinates with leading zeros)."""
    for _ in range(100):
        generated = generate_certificate()
        cert = x509.load_der_x509_certificate(generated.cert_der)
        assert cert.public_bytes(serialization.Encoding.DER) == generated.cert_der
        cert.verify_directly_issued_by(cert)
        key = serialization.load_pem_private_key(generated.key_pem, password=None)
        assert key.public_key() == cert.public_key()


def test_private_key_matches_certificate(generated, cert) -> None:
    key = serialization.load_pem_private_key(generated.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()
    signature = key.sign(b"proof", ec.ECDSA(hashes.SHA256()))
    cert.public_key().verify(signature, b"proof", ec.ECDSA(hashes.SHA256()))


def test_names_and_extensions(cert) -> None:
    expected_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    assert cert.subject == expected_name
    assert cert.issuer == expected_name
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length is None
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.digital_signature
    assert usage.value.key_agreement and usage.value.key_encipherment
    assert not (usage.value.content_commitment or usage.value.data_encipherment)
    assert not usage.value.crl_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_validity_window_contains_now(cert) -> None:
    """Valid from an hour ago for ten years: longer than any plugin run, whatever the clock."""
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now - datetime.timedelta(minutes=59)
    assert now + datetime.timedelta(days=3649) <= cert.not_valid_after_utc
    assert cert.not_valid_after_utc <= now + datetime.timedelta(days=3651)


def test_each_call_gives_a_fresh_key_and_serial() -> None:
    first, second = (x509.load_der_x509_certificate(generate_certificate().cert_der) for _ in "ab")
    assert first.serial_number != second.serial_number
    assert 0 < first.serial_number < 2**128
    assert first.public_key() != second.public_key()


def test_handshake_text_is_unpadded_base64_of_the_der(generated) -> None:
    text = generated.handshake_text
    assert "=" not in text and "\n" not in text
    assert base64.b64decode(text + "=" * (-len(text) % 4)) == generated.cert_der


@pytest.fixture
def tls_health_server(generated: ServerCertificate) -> Iterator[str]:
    """A TLS gRPC server with the health service on a unix socket; yields its address."""
    socket_dir = tempfile.mkdtemp(prefix="tls", dir="/tmp")
    address = f"unix:{socket_dir}/plugin.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials([(generated.key_pem, generated.cert_pem)])
    server.add_secure_port(address, credentials)
    server.start()
    try:
        yield address
    finally:
        server.stop(grace=None).wait()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _check(channel: grpc.Channel) -> health_pb2.HealthCheckResponse:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)


def test_grpc_tls_end_to_end(generated, tls_health_server) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=generated.cert_pem)
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(tls_health_server, credentials, options=options) as channel:
        assert _check(channel).status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(tls_health_server) as channel, pytest.raises(grpc.RpcError):
        _check(channel)


def test_grpc_rejects_a_server_it_does_not_trust(tls_health_server) -> None:
    other = generate_certificate()  # a different self-signed CA
    credentials = grpc.ssl_channel_credentials(root_certificates=other.cert_pem)
    options = [("grpc.ssl_target_name_override", "localhost")]
    channel = grpc.secure_channel(tls_health_server, credentials, options=options)
    with channel, pytest.raises(grpc.RpcError) as raised:
        _check(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_importing_and_generating_loads_no_cryptography() -> None:
    code = (
        "import sys\n"
        "import tfprovider_immuta_pg.protocol.tls as tls\n"
        "tls.generate_certificate()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[]"
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert not [name for name in imported if name.startswith("cryptography")]
