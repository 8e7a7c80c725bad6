"""Throw-away certificate authorities and certificates for the TLS tests (the ``cryptography`` package).

:func:`make_material` writes, into a directory, a CA and certificates it signed: one for the services
(each serves it and presents it as a client; names ``localhost`` and ``127.0.0.1``), one for a client,
and a client certificate from an unrelated CA that the services must refuse.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.tls import TransportSecurity

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Material:
    ca: Path
    service: Pair
    client: Pair
    stranger: Pair  # signed by another CA

    def services(self, require_client_cert: bool = True) -> TransportSecurity:
        """What the services (and the platform's own calls) use."""
        return TransportSecurity(ca_file=self.ca, cert_file=self.service.cert, key_file=self.service.key,
                                 require_client_cert=require_client_cert)

    def client_without_certificate(self) -> TransportSecurity:
        return TransportSecurity(ca_file=self.ca)

    def stranger_client(self) -> TransportSecurity:
        return TransportSecurity(ca_file=self.ca, cert_file=self.stranger.cert, key_file=self.stranger.key)


def _now() -> dt.datetime:
    # Certificates are checked against the real clock by the TLS library: a travelling test clock
    # (UR_TEST_TRAVEL_TO) must not make them not yet valid, so they span a wide window.
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=3650)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common_name: str, ca: x509.Certificate, ca_key: Key, *, server: bool) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=3650)).not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Pair:
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pair


def make_material(directory: Path) -> Material:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("UR test CA")
    _write(directory, "ca", ca, ca_key)
    service = _write(directory, "service", *_leaf("ur-service", ca, ca_key, server=True))
    client = _write(directory, "client", *_leaf("ur-client", ca, ca_key, server=False))
    other, other_key = _ca("Someone else's CA")
    stranger = _write(directory, "stranger", *_leaf("stranger", other, other_key, server=False))
    return Material(directory / "ca.crt", service, client, stranger)


def reissue_service_certificate(material: Material) -> int:
    """A new certificate for the services from the same CA, replacing the old files (each renamed into
    place whole, as a secret rotation does); its serial number."""
    ca = x509.load_pem_x509_certificate(material.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((material.ca.parent / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the test CA's key is an EC key")
    cert, key = _leaf("ur-service", ca, ca_key, server=True)
    fresh = _write(material.ca.parent, "service-reissued", cert, key)
    fresh.key.replace(material.service.key)
    fresh.cert.replace(material.service.cert)
    return int(cert.serial_number)
