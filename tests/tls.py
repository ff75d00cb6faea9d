"""Certificates for the tests' https servers, made at test time by ``openssl`` (nothing secret
is checked in, nothing expires in the repository): a CA of its own, and a leaf it signed for
the tests' addresses (127.0.0.1 to 127.0.0.20) and ``localhost``.

The crawl trusts the CA only through ``fetch.ca_file``: without it, every https page of these
servers fails verification, as a site with a private CA's certificate does in the wild.
"""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import subprocess
from pathlib import Path

OPENSSL = shutil.which("openssl")
ADDRESSES = [f"127.0.0.{n}" for n in range(1, 21)]
"""The addresses the leaf is valid for: those the tests' servers listen on."""

_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
# Python 3.13 verifies with VERIFY_X509_STRICT: the CA needs a critical basicConstraints and
# keyUsage, the leaf an authorityKeyIdentifier; without them only the newest Pythons fail.
_CA_EXTENSIONS = [
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
]
_LEAF_EXTENSIONS = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid,issuer",
    "subjectAltName=DNS:localhost," + ",".join(f"IP:{a}" for a in ADDRESSES),
]


@dataclasses.dataclass(frozen=True)
class Certificates:
    ca_file: Path
    """The CA's certificate (PEM): what ``fetch.ca_file`` names."""
    leaf_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the leaf (a new one per server: contexts are
        cheap, and a test may change its own)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.leaf_file, self.key_file)
        return context


def make_certificates(directory: Path) -> Certificates:
    """A CA and a leaf signed by it, in ``directory``; requires :data:`OPENSSL`."""
    assert OPENSSL is not None
    ca_key, ca_file = directory / "ca.key", directory / "ca.pem"
    key_file, request, leaf_file = (directory / f"leaf.{s}" for s in ("key", "csr", "pem"))
    extensions = directory / "leaf.ext"
    extensions.write_text("\n".join(_LEAF_EXTENSIONS) + "\n")
    ca = ["/CN=crawler tests CA", *(f"-addext={extension}" for extension in _CA_EXTENSIONS)]
    for command in (
        ["req", "-x509", *_CURVE, "-keyout", ca_key, "-out", ca_file, "-days", "2", "-subj", *ca],
        ["req", *_CURVE, "-keyout", key_file, "-out", request, "-subj", "/CN=127.0.0.1"],
        [
            "x509",
            "-req",
            "-in",
            request,
            "-CA",
            ca_file,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            leaf_file,
            "-days",
            "2",
            "-extfile",
            extensions,
        ],
    ):
        subprocess.run([OPENSSL, *map(str, command)], check=True, capture_output=True)
    return Certificates(ca_file, leaf_file, key_file)
