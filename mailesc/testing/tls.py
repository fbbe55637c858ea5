"""A throwaway certificate authority for TLS tests, made with the ``openssl`` command line.

``TlsAuthority.create()`` makes a CA and a server certificate for ``localhost`` / ``127.0.0.1``; a
``DovecotServer(tls=authority)`` then serves IMAPS and STARTTLS, and ``SmtpSink(starttls=authority.server_context())``
or ``SmtpSink(implicit_tls=...)`` SMTP over TLS, while mailesc is pointed at ``authority.ca_file``. The command line
rather than a Python crypto library: openssl is on every machine that runs Dovecot, and no extra dependency is needed.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

from mailesc.testing.wait import LOCALHOST

__all__ = ["TlsAuthority", "find_openssl"]


def find_openssl() -> str | None:
    """Path of the openssl command, or None."""
    return shutil.which("openssl")


class TlsAuthority:
    """A throwaway CA (``ca_file``) and a server certificate signed by it.

    The default server certificate (``cert_file``/``key_file``) is for
    ``DNS:localhost`` and ``IP:127.0.0.1``; ``issue()`` makes more (other names,
    expired ones). Everything lives in a 0755 temp dir under /tmp: the CA and
    certificates are world-readable (0644); keys are 0600 and owned by the
    current user (root reads them at Dovecot start-up, login processes get the
    key from Dovecot's config process, never from the file).
    """

    def __init__(self, root: Path, openssl: str):
        self.root = root
        self.openssl = openssl
        self.ca_file = root / "ca.pem"
        self.ca_key = root / "ca.key"
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self._serial = itertools.count(2)
        self._cleaned = False
        atexit.register(self.cleanup)

    @classmethod
    def create(cls, openssl: str | None = None) -> "TlsAuthority":
        """A new CA and its default server certificate in a fresh folder under /tmp (RuntimeError: no openssl)."""
        openssl = openssl or find_openssl()
        if not openssl:
            raise RuntimeError("the openssl command is not installed")
        root = Path(tempfile.mkdtemp(prefix="mesc-tls-", dir="/tmp"))
        os.chmod(root, 0o755)
        authority = cls(root, openssl)
        try:
            authority._make_ca()
            authority.cert_file, authority.key_file = authority.issue(
                "server", dns=("localhost",), ips=(LOCALHOST,)
            )
        except BaseException:
            authority.cleanup()
            raise
        return authority

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self.openssl, *args], cwd=self.root, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"openssl {' '.join(args)} failed with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _make_ca(self) -> None:
        self._run(
            "req", "-x509", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(self.ca_key), "-out", str(self.ca_file),
            "-days", "7", "-subj", "/O=mailesc tests/CN=mailesc throwaway test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )
        os.chmod(self.ca_key, 0o600)
        os.chmod(self.ca_file, 0o644)

    def issue(
        self,
        name: str,
        dns: Iterable[str] = ("localhost",),
        ips: Iterable[str] = (LOCALHOST,),
        days: int = 7,
    ) -> tuple[Path, Path]:
        """A server certificate signed by this CA: ``(cert_file, key_file)``.

        ``dns``/``ips`` become the subjectAltName (and the first one the CN)."""
        dns, ips = tuple(dns), tuple(ips)
        if not dns and not ips:
            raise ValueError("a certificate needs at least one name")
        cert, key, csr = (self.root / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
        ext_file = self.root / f"{name}.ext"
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext_file.write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = {', '.join(sans)}\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n"
        )
        self._run(
            "req", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(csr),
            "-subj", f"/O=mailesc tests/CN={(dns or ips)[0]}",
        )
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(self.ca_key),
            "-set_serial", str(next(self._serial)), "-days", str(days), "-sha256",
            "-extfile", str(ext_file), "-out", str(cert),
        )
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)
        return cert, key

    def server_context(self, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for a server presenting ``cert_file`` (default: the localhost one)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file or self.cert_file), str(key_file or self.key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA (what mailesc builds from ca_file)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def cleanup(self) -> None:
        """Delete the folder with the CA, certificates and keys (safe to call twice, also run at exit)."""
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(self.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<TlsAuthority {self.root}>"


