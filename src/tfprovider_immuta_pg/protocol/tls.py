"""A fresh self-signed ECDSA P-256 server certificate, as go-plugin's AutoMTLS expects.

Pure Python on purpose: importing ``cryptography`` would be a large share of the provider's
start-up, and Terraform waits for the handshake line on every plan and apply; generating one
key and signing one certificate here is cheap (docs/performance.md, "Figures behind the
code"). The key is ephemeral and only guards a unix socket for one Terraform run, so the
arithmetic need not be constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

# P-256 (secp256r1, SEC 2 section 2.4.2): y^2 = x^3 - 3x + b over GF(P), group order N.
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

# Jacobian coordinates (X, Y, Z) stand for the affine point (X/Z^2, Y/Z^3); Z == 0 is infinity.
Point = tuple[int, int, int]
INFINITY: Point = (1, 1, 0)

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_PRIME256V1 = "1.2.840.10045.3.1.7"
OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
# The certificate lives as long as its process; no plugin run comes near ten years, and a
# clock stepped by hours either way still finds it valid.
CERTIFICATE_LIFETIME = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class ServerCertificate:
    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes

    @property
    def handshake_text(self) -> str:
        """The DER in base64 without padding, as the handshake line carries it."""
        return base64.b64encode(self.cert_der).decode().rstrip("=")


def _double(pt: Point) -> Point:
    x, y, z = pt
    if z == 0 or y == 0:
        return INFINITY
    delta, gamma = z * z % P, y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P  # a = -3
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    return x3, (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P, z3


def _add(p1: Point, p2: Point) -> Point:
    (x1, y1, z1), (x2, y2, z2) = p1, p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    h, r = (u2 - u1) % P, (s2 - s1) % P
    if h == 0:
        return _double(p1) if r == 0 else INFINITY
    hh = h * h % P
    hhh, v = h * hh % P, u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return x3, (r * (v - x3) - s1 * hhh) % P, z1 * z2 * h % P


def _multiply_g(k: int) -> tuple[int, int]:
    """k * G in affine coordinates, with a fixed 4-bit window (0 < k < N)."""
    table = [INFINITY, (GX, GY, 1)]
    for _ in range(14):
        table.append(_add(table[-1], table[1]))
    acc = INFINITY
    for shift in range(252, -4, -4):
        acc = _double(_double(_double(_double(acc))))
        acc = _add(acc, table[(k >> shift) & 15])
    x, y, z = acc
    z_inv = pow(z, -1, P)
    return x * z_inv * z_inv % P, y * z_inv * z_inv * z_inv % P


# Minimal DER: definite lengths, non-negative integers only.
def _tlv(tag: int, *content: bytes) -> bytes:
    body = b"".join(content)
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _seq(*content: bytes) -> bytes:
    return _tlv(0x30, *content)


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _bits(data: bytes) -> bytes:
    return _tlv(0x03, b"\x00", data)


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    body = bytearray()
    for arc in (40 * first + second, *rest):
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _name(*attributes: tuple[str, str]) -> bytes:
    return _seq(*(_tlv(0x31, _seq(_oid(oid), _tlv(0x0C, v.encode()))) for oid, v in attributes))


def _x509_time(epoch: float) -> bytes:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    moment = time.gmtime(epoch)
    if moment.tm_year < 2050:
        return _tlv(0x17, time.strftime("%y%m%d%H%M%SZ", moment).encode())
    return _tlv(0x18, time.strftime("%Y%m%d%H%M%SZ", moment).encode())


def _extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    return _seq(_oid(oid), _tlv(0x01, b"\xff") if critical else b"", _tlv(0x04, value))


def _pem(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der).decode()
    body = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def _sign(d: int, message: bytes) -> bytes:
    """ECDSA-SHA256 signature of message with private key d, DER-encoded (r, s)."""
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    while True:
        k = secrets.randbelow(N - 1) + 1
        r = _multiply_g(k)[0] % N
        s = pow(k, -1, N) * (e + r * d) % N
        if r and s:
            return _seq(_int(r), _int(s))


def generate_certificate() -> ServerCertificate:
    """Key pair and certificate shaped like go-plugin's own (O=HashiCorp, CN=localhost, CA)."""
    d = secrets.randbelow(N - 1) + 1
    qx, qy = _multiply_g(d)
    public_point = b"\x04" + qx.to_bytes(32, "big") + qy.to_bytes(32, "big")
    ec_algorithm = _seq(_oid(OID_EC_PUBLIC_KEY), _oid(OID_PRIME256V1))
    signature_algorithm = _seq(_oid(OID_ECDSA_WITH_SHA256))
    name = _name(("2.5.4.10", "HashiCorp"), ("2.5.4.3", "localhost"))
    now = time.time()
    # digitalSignature, keyEncipherment, keyAgreement, keyCertSign: bits 0, 2, 4, 5 = 0xAC.
    key_usage = _tlv(0x03, b"\x02\xac")  # 2 unused trailing bits
    server_auth, client_auth = _oid("1.3.6.1.5.5.7.3.1"), _oid("1.3.6.1.5.5.7.3.2")
    tbs = _seq(
        _tlv(0xA0, _int(2)),  # version v3
        _int(secrets.randbelow(2**128 - 1) + 1),  # serial: 16 random bytes, positive
        signature_algorithm,
        name,  # issuer
        _seq(_x509_time(now - 3600), _x509_time(now + CERTIFICATE_LIFETIME)),
        name,  # subject
        _seq(ec_algorithm, _bits(public_point)),
        _tlv(
            0xA3,
            _seq(
                _extension("2.5.29.19", _seq(_tlv(0x01, b"\xff")), critical=True),  # CA
                _extension("2.5.29.15", key_usage, critical=True),
                _extension("2.5.29.37", _seq(server_auth, client_auth)),
                _extension("2.5.29.17", _seq(_tlv(0x82, b"localhost"))),  # SAN dNSName
            ),
        ),
    )
    cert_der = _seq(tbs, signature_algorithm, _bits(_sign(d, tbs)))
    # PKCS#8 around a SEC1 ECPrivateKey; the outer algorithm names the curve. (grpc also takes
    # "EC PRIVATE KEY", but only with the curve in its [0] field; a bad key fails at bind time.)
    ec_private_key = _seq(
        _int(1), _tlv(0x04, d.to_bytes(32, "big")), _tlv(0xA1, _bits(public_point))
    )
    key_der = _seq(_int(0), ec_algorithm, _tlv(0x04, ec_private_key))
    return ServerCertificate(
        cert_pem=_pem("CERTIFICATE", cert_der),
        key_pem=_pem("PRIVATE KEY", key_der),
        cert_der=cert_der,
    )


# ---------------------------------------------------------------- the client go-plugin announces

PEM_BEGIN, PEM_END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def client_certificate_der(pem: str) -> bytes:
    """The DER of the one certificate in PLUGIN_CLIENT_CERT; ValueError when it is not one."""
    start, end = pem.find(PEM_BEGIN), pem.find(PEM_END)
    if start < 0 or end < start:
        raise ValueError("PLUGIN_CLIENT_CERT holds no PEM certificate")
    body = "".join(pem[start + len(PEM_BEGIN) : end].split())
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ValueError("PLUGIN_CLIENT_CERT holds a damaged PEM certificate") from exc
    if not der.startswith(b"\x30"):
        raise ValueError("PLUGIN_CLIENT_CERT holds a damaged PEM certificate")
    return der


def server_context(certificate: ServerCertificate, client_pem: str) -> ssl.SSLContext:
    """Mutual TLS: our certificate, and only the announced client's accepted.

    Python's ssl (OpenSSL) rather than grpcio's TLS: grpcio refuses to verify go-plugin's
    ECDSA P-521 client key.
    """
    import ssl  # loaded by the server thread, after the handshake line (it is not cheap)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # TLS 1.3 only, without tickets: no session outlives its connection (a TLS 1.2 server
    # would still resume from its session cache), and go-plugin's client speaks 1.3.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_pem)
    context.set_alpn_protocols(["h2"])  # grpc-go refuses a TLS server without ALPN h2
    # load_cert_chain reads only files: an anonymous memory file keeps the key off disk.
    fd = os.memfd_create("plugin-key", os.MFD_CLOEXEC)
    try:
        os.write(fd, certificate.cert_pem + certificate.key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context
