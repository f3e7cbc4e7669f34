"""Fixtures for the real-socket TCPCL tests: a CA and node certificates made with ``cryptography``."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dtn.convergence.base import Link, RefuseReason
from dtn.convergence.tcpcl import tls

T = TypeVar("T")

ID_ON_BUNDLE_EID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.11")


def _ia5(text: str) -> bytes:
    raw = text.encode("ascii")
    return bytes((0x16, len(raw))) + raw


@dataclass
class Pki:
    directory: Path
    ca_file: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    def issue(self, name: str, node_id: str, *, uri_san: bool = False, ca: Pki | None = None) -> tuple[Path, Path]:
        """A node certificate naming ``node_id`` as NODE-ID (otherName id-on-bundleEID) or as a URI SAN."""
        issuer = ca or self
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(node_id) if uri_san else x509.OtherName(ID_ON_BUNDLE_EID, _ia5(node_id))
        )
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san, x509.DNSName("localhost")]), critical=False)
            .sign(issuer.ca_key, hashes.SHA256())
        )
        cert_file = self.directory / f"{name}.crt"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file

    def contexts(self, name: str, node_id: str, **kw: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        cert, key = self.issue(name, node_id, **kw)
        return tls.server_context(cert, key, self.ca_file), tls.client_context(cert, key, self.ca_file)


def make_pki(directory: Path, cn: str = "test CA") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca_file = directory / f"{cn.replace(' ', '_')}.crt"
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pki(directory, ca_file, key, cert)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class Sink:
    """A BundleSink that records what it is told; ``decide`` picks the answer, ``gate`` can hold it."""

    decide: RefuseReason | None = None
    gate: asyncio.Event | None = None
    keep: bool = True
    received: list[bytes] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    up: list[Link] = field(default_factory=list)
    down: list[tuple[Link, str]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    started: int = 0

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        self.started += 1
        await self._notify()
        if self.gate is not None:
            await self.gate.wait()
        self.sizes.append(len(data))
        if self.keep:
            self.received.append(data)
        await self._notify()
        return self.decide

    def link_up(self, link: Link) -> None:
        self.up.append(link)
        asyncio.get_running_loop().create_task(self._notify())

    def link_down(self, link: Link, reason: str) -> None:
        self.down.append((link, reason))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: object, timeout_s: float = 10.0) -> None:
        async def waiter() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)  # type: ignore[arg-type]

        async with asyncio.timeout(timeout_s):
            await waiter()


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``await`` with a time limit (``asyncio.timeout``; ``wait_for`` in 3.11 can swallow a cancellation)."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
