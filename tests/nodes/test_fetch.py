"""Fetching collection URLs: real HTTP(S) servers on 127.0.0.1, real addresses refused.

`Site` is also what the engine tests (tests/engine/test_collection.py) serve records from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import ipaddress
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from nodes import fetch

Route = tuple[int, dict[str, str], bytes | Iterable[bytes]]


class Site:
    """A real HTTP(S) server on 127.0.0.1 (a free port) serving `routes` by path; it records
    each request's path and headers, and the TLS server names (SNI) clients send."""

    def __init__(
        self, routes: dict[str, Route | Callable[[], Route]], tls: ssl.SSLContext | None = None, host="127.0.0.1"
    ):
        self.routes = routes
        self.requests: list[dict[str, Any]] = []
        self.server_names: list[str | None] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                route = site.routes.get(urlsplit(self.path).path)
                if route is None:
                    self.send_error(404)
                    return
                status, headers, body = route() if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for chunk in [body] if isinstance(body, bytes) else body:
                    self.wfile.write(chunk)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.handle_error = lambda request, address: None  # clients that hang up mid-body
        self.scheme = "http"
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: site.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(body: bytes, content_type: str = "application/octet-stream", length: bool = True) -> Route:
    headers = {"Content-Type": content_type}
    if length:
        headers["Content-Length"] = str(len(body))
    return 200, headers, body


def redirect(location: str, status: int = 302) -> Route:
    return status, {"Location": location, "Content-Length": "0"}, b""


def slow(seconds: float) -> Callable[[], Route]:
    def route() -> Route:
        time.sleep(seconds)
        return ok(b"late\n", "text/plain")

    return route


ROWS = b'{"id": 1, "text": "one"}\n{"id": 2, "text": "two"}\n'


@pytest.fixture
def site():
    running = Site({"/rows.jsonl": ok(ROWS, "application/x-ndjson")})
    yield running
    running.close()


@pytest.fixture
def allow(settings):
    def set_allowlist(*entries: str) -> None:
        settings.DATAMATE_COLLECT_ALLOWED_HOSTS = list(entries)

    return set_allowlist


def fetch_bytes(url: str, *, max_bytes: int = 10_000_000, timeout: float = 5, **options) -> bytes:
    with fetch.open_url(url, max_bytes=max_bytes, timeout=timeout, **options) as response:
        return response.stream.read()


# --- what is fetched ----------------------------------------------------------------


def test_an_allowed_url_is_fetched_with_its_host_header(site, allow):
    allow("127.0.0.1")
    with fetch.open_url(site.url("/rows.jsonl"), max_bytes=1000, timeout=5, headers={"accept": "x/y"}) as response:
        assert response.stream.read() == ROWS
        assert response.content_type == "application/x-ndjson"
        assert response.size == len(ROWS)
    headers = site.requests[0]["headers"]
    assert headers["host"] == f"127.0.0.1:{site.port}"
    assert headers["accept"] == "x/y"
    assert "datamate" in headers["user-agent"].lower()


def test_a_name_and_its_network_both_allowed_connect_to_the_checked_address(site, allow):
    allow("localhost", "127.0.0.0/8")
    assert fetch_bytes(site.url("/rows.jsonl", host="localhost")) == ROWS
    # The request went to the address, but still names the host it was for.
    assert site.requests[0]["headers"]["host"] == f"localhost:{site.port}"


def test_hosts_outside_the_allowlist_are_refused_and_none_are_allowed_by_default(site, allow):
    allow()
    with pytest.raises(fetch.FetchError, match=r"host 127\.0\.0\.1 is not allowed \(DATAMATE_COLLECT_ALLOWED_HOSTS\)"):
        fetch_bytes(site.url("/rows.jsonl"))
    allow("example.org")
    with pytest.raises(fetch.FetchError, match="host localhost is not allowed"):
        fetch_bytes(site.url("/rows.jsonl", host="localhost"))
    assert site.requests == []


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.0.0.2", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("[::ffff:127.0.0.1]", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("[fe80::1]", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("[fd00::1]", "a private address"),
        ("100.64.0.1", "not a public address"),
        ("224.0.0.1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
    ],
)
def test_non_public_addresses_are_refused_even_when_any_host_is_allowed(allow, host, problem):
    allow("*")
    url = f"http://{host}/latest/meta-data/"
    with pytest.raises(fetch.FetchError) as refused:
        fetch_bytes(url)
    message = str(refused.value)
    assert message.startswith(f"{url}: ")
    assert problem in message and "refused" in message


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(site, allow):
    allow("localhost")
    url = site.url("/rows.jsonl", host="localhost")
    with pytest.raises(fetch.FetchError, match=r"localhost resolves to 127\.0\.0\.1, a loopback address; refused"):
        fetch_bytes(url)
    assert site.requests == []


def test_an_explicitly_allowed_network_is_reachable_only_for_its_addresses(site, allow):
    allow("*", "127.0.0.1/32")
    assert fetch_bytes(site.url("/rows.jsonl")) == ROWS
    with pytest.raises(fetch.FetchError, match=r"127\.0\.0\.2 is a loopback address"):
        fetch_bytes(site.url("/rows.jsonl", host="127.0.0.2"))


def test_allowlist_patterns():
    allowlist = fetch.Allowlist.parse(["docs.example.com", "*.data.example.org", "10.1.0.0/16", " ", "[::1]"])
    assert allowlist.allows_host("docs.example.com")
    assert not allowlist.allows_host("example.com")
    assert allowlist.allows_host("a.data.example.org") and allowlist.allows_host("x.y.data.example.org")
    assert not allowlist.allows_host("data.example.org") and not allowlist.allows_host("baddata.example.org")
    assert allowlist.allows_host("10.1.2.3") and not allowlist.allows_host("10.2.0.1")
    assert allowlist.allows_host("::1")
    assert allowlist.allows_address(ipaddress.ip_address("10.1.255.255"))
    assert fetch.Allowlist.parse(["*.bücher.example"]).allows_host("www.xn--bcher-kva.example")
    with pytest.raises(fetch.FetchError, match=r"DATAMATE_COLLECT_ALLOWED_HOSTS: 'ex ample' is not a host name"):
        fetch.Allowlist.parse(["ex ample"])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.org/data.csv", "not an http(s) URL"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("http:///no-host", "not an http(s) URL"),
        ("data.example.org/rows.jsonl", "not an http(s) URL"),
        ("https://user:secret@example.org/", "credentials in a URL are not allowed"),
    ],
)
def test_urls_that_can_never_be_collected(url, problem):
    assert problem in fetch.url_problem(url)


def test_credential_headers_may_not_be_set(site, allow):
    allow("127.0.0.1")
    with pytest.raises(fetch.FetchError, match="header 'Authorization' may not be set"):
        fetch_bytes(site.url("/rows.jsonl"), headers={"Authorization": "Bearer abc"})
    assert site.requests == []


# --- redirects ----------------------------------------------------------------------


def test_redirects_are_followed_and_every_hop_is_checked(site, allow):
    allow("*", "127.0.0.1")
    site.routes["/moved"] = redirect("/rows.jsonl", status=301)
    site.routes["/to-metadata"] = redirect("http://169.254.169.254/latest/meta-data/")
    site.routes["/to-localhost"] = redirect(site.url("/rows.jsonl", host="localhost"))

    with fetch.open_url(site.url("/moved"), max_bytes=1000, timeout=5) as response:
        assert response.stream.read() == ROWS
        assert response.final_url == site.url("/rows.jsonl")

    with pytest.raises(fetch.FetchError) as refused:
        fetch_bytes(site.url("/to-metadata"))
    assert str(refused.value).startswith(
        f"{site.url('/to-metadata')} (redirected to http://169.254.169.254/latest/meta-data/): "
    )
    assert "link-local" in str(refused.value)

    allow("127.0.0.1")
    with pytest.raises(fetch.FetchError, match="host localhost is not allowed"):
        fetch_bytes(site.url("/to-localhost"))


def test_redirects_are_bounded(site, allow):
    allow("127.0.0.1")
    site.routes["/loop"] = redirect("/loop")
    with pytest.raises(fetch.FetchError, match=f"more than {fetch.MAX_REDIRECTS} redirects"):
        fetch_bytes(site.url("/loop"))
    assert len(site.requests) == fetch.MAX_REDIRECTS + 1


# --- limits -------------------------------------------------------------------------


def test_a_body_over_max_bytes_stops_the_download_naming_the_url(site, allow):
    allow("127.0.0.1")
    chunk = b"x" * 65536
    site.routes["/declared"] = ok(chunk * 4)
    site.routes["/streamed"] = (200, {"Content-Type": "text/plain"}, (chunk for _ in range(10_000)))  # 655 MB

    with pytest.raises(fetch.FetchError, match=r"/declared: the body \(262144 bytes\) is larger than max_bytes"):
        fetch_bytes(site.url("/declared"), max_bytes=100_000)
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match=r"/streamed: the body is larger than max_bytes \(100000 bytes\)"):
        fetch_bytes(site.url("/streamed"), max_bytes=100_000)
    assert time.monotonic() - started < 5  # it stopped reading, rather than taking it all


def test_a_slow_server_runs_into_the_timeout(site, allow):
    allow("127.0.0.1")
    site.routes["/slow"] = slow(3)
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match=r"/slow: no answer within 0\.5 s \(timeout_seconds\)"):
        fetch_bytes(site.url("/slow"), timeout=0.5)
    assert time.monotonic() - started < 2


def test_an_http_error_names_the_status(site, allow):
    allow("127.0.0.1")
    with pytest.raises(fetch.FetchError, match=r"/missing: HTTP 404 Not Found"):
        fetch_bytes(site.url("/missing"))


# --- TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA and a certificate for the name `localhost` only (no IP address in it)."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DataMate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


@pytest.fixture
def tls_site(certificates):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "cert.pem", certificates / "key.pem")
    running = Site({"/rows.jsonl": ok(ROWS, "application/x-ndjson")}, tls=context)
    yield running
    running.close()


def test_https_to_a_checked_address_keeps_sni_and_certificate_verification(tls_site, certificates, allow):
    allow("localhost", "127.0.0.1")
    trusting_the_test_ca = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    url = tls_site.url("/rows.jsonl", host="localhost")

    assert fetch_bytes(url, verify=trusting_the_test_ca) == ROWS
    # The connection went to 127.0.0.1, yet TLS was for the name: SNI and the certificate
    # (which names localhost only) were checked against `localhost`.
    assert tls_site.server_names == ["localhost"]
    assert tls_site.requests[0]["headers"]["host"] == f"localhost:{tls_site.port}"

    # By address, the same certificate does not match; and an unknown CA is not trusted.
    with pytest.raises(fetch.FetchError, match="certificate verify failed"):
        fetch_bytes(tls_site.url("/rows.jsonl"), verify=trusting_the_test_ca)
    with pytest.raises(fetch.FetchError, match="certificate verify failed"):
        fetch_bytes(url)
    assert len(tls_site.requests) == 1
