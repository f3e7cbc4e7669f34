"""TLS for TCPCLv4 (RFC 9174 §4.4): SSL contexts and the node IDs a certificate vouches for.

RFC 9174's NODE-ID is a subjectAltName ``otherName`` of type ``id-on-bundleEID`` (1.3.6.1.5.5.7.8.11) holding
the node ID as an IA5String; Python's ``ssl`` does not expose otherName values, so the certificate's DER is read
here with a small bounded walker. URI subjectAltNames are accepted too (older drafts and some peers use them).
"""

from __future__ import annotations

import ssl
from pathlib import Path

#: DER content bytes of the OID id-on-bundleEID, 1.3.6.1.5.5.7.8.11.
ID_ON_BUNDLE_EID = bytes((0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x0B))
#: DER content bytes of the OID id-ce-subjectAltName, 2.5.29.17.
ID_CE_SUBJECT_ALT_NAME = bytes((0x55, 0x1D, 0x11))


def server_context(certfile: str | Path, keyfile: str | Path, cafile: str | Path) -> ssl.SSLContext:
    """The passive side: TLS 1.2+, presents its certificate and requires one from the client (§4.4.3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certfile), str(keyfile))
    ctx.load_verify_locations(str(cafile))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(certfile: str | Path, keyfile: str | Path, cafile: str | Path) -> ssl.SSLContext:
    """The active side: TLS 1.2+, verifies the chain; the identity check is the NODE-ID one after SESS_INIT."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the node ID, not the DNS name, is what authenticates a DTN peer
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(certfile), str(keyfile))
    ctx.load_verify_locations(str(cafile))
    return ctx


class _Der:
    """Just enough DER to walk to the subjectAltName extension; every bound is checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def tlv(self, pos: int, end: int) -> tuple[int, int, int]:
        """(tag, content start, content end) of the element at ``pos``."""
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag, first = self.data[pos], self.data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(self.data[pos : pos + count], "big")
            pos += count
        if pos + length > end:
            raise ValueError("DER element overruns its parent")
        return tag, pos, pos + length

    def children(self, start: int, end: int) -> list[tuple[int, int, int]]:
        out = []
        pos = start
        while pos < end:
            tag, cstart, cend = self.tlv(pos, end)
            out.append((tag, cstart, cend))
            pos = cend
        return out


def node_ids_from_certificate(der: bytes) -> frozenset[str]:
    """NODE-IDs (otherName id-on-bundleEID) and URI subjectAltNames in a DER certificate; empty if none."""
    try:
        return frozenset(_node_ids(_Der(der)))
    except (ValueError, UnicodeDecodeError):
        return frozenset()


def _node_ids(d: _Der) -> list[str]:
    _, cert_start, cert_end = d.tlv(0, len(d.data))
    _, tbs_start, tbs_end = d.children(cert_start, cert_end)[0]
    ids: list[str] = []
    for tag, start, end in d.children(tbs_start, tbs_end):
        if tag != 0xA3:  # [3] extensions
            continue
        (_, exts_start, exts_end), *_ = d.children(start, end)
        for _, ext_start, ext_end in d.children(exts_start, exts_end):
            parts = d.children(ext_start, ext_end)
            if parts[0][0] != 0x06 or d.data[parts[0][1] : parts[0][2]] != ID_CE_SUBJECT_ALT_NAME:
                continue
            _, value_start, value_end = parts[-1]  # OCTET STRING wrapping GeneralNames
            _, names_start, names_end = d.tlv(value_start, value_end)
            for name_tag, n_start, n_end in d.children(names_start, names_end):
                if name_tag == 0x86:  # uniformResourceIdentifier [6] IA5String
                    ids.append(d.data[n_start:n_end].decode("ascii"))
                elif name_tag == 0xA0:  # otherName [0] { type-id OID, [0] EXPLICIT value }
                    inner = d.children(n_start, n_end)
                    if len(inner) == 2 and d.data[inner[0][1] : inner[0][2]] == ID_ON_BUNDLE_EID:
                        _, v_start, v_end = d.tlv(inner[1][1], inner[1][2])
                        ids.append(d.data[v_start:v_end].decode("ascii"))
    return ids
