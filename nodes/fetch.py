"""HTTP(S) downloads for Data Collection that cannot be turned against the server's network.

A URL is fetched only if its host is allowed (`DATAMATE_COLLECT_ALLOWED_HOSTS`), and only
from addresses that are public or explicitly allowed:

- The host name is resolved once; every address it resolves to is checked, and the request
  goes to a checked address (the URL's host is swapped for it). The name is kept for the
  `Host` header and for TLS (SNI and certificate verification, through httpx's
  `sni_hostname` extension), so a DNS answer that changes between check and connect
  (rebinding) is never used.
- Redirects are followed here, at most MAX_REDIRECTS, and every hop is checked like the
  first URL. Proxy settings from the environment are ignored, so a proxy never resolves
  the name in our place.
- The body is read as a stream; more than `max_bytes` (after decompression) or more than
  `timeout` seconds in all stops it with an error naming the URL.

Allowlist entries (comma-separated):
    `example.com`      exactly this host
    `*.example.com`    any name below example.com (not example.com itself)
    `*`                any host
    `10.1.2.3`, `10.0.0.0/8`, `::1`
                       URLs with an address in the network as their host, and names that
                       resolve into it even when it is loopback, private, link-local …

Loopback, private, link-local, multicast, reserved and other non-public addresses are
refused unless a network entry covers them: to collect from an internal host list both its
name and its network, e.g. `wiki.internal,10.20.0.0/16`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import contextlib
from dataclasses import dataclass, field
import io
import ipaddress
import shutil
import socket
import ssl
import tempfile
import time
from typing import IO

from django.conf import settings
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "DATAMATE_COLLECT_ALLOWED_HOSTS"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Request headers a node may set. Credentials (Authorization, Cookie, API-key headers) do
#: not belong in a node config, which any editor of the pipeline reads; Host is ours to set.
ALLOWED_HEADERS = ("Accept", "Accept-Language", "User-Agent")
USER_AGENT = "DataMate-Pipelines (data collection)"
_READ_BUFFER = 1024 * 1024


class FetchError(Exception):
    """A URL was refused or could not be fetched; the message starts with the URL."""


@dataclass(frozen=True)
class Allowlist:
    any_host: bool = False
    names: frozenset[str] = frozenset()
    #: From `*.example.com`: ".example.com".
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], setting: str = SETTING) -> Allowlist:
        """`setting`: the variable the entries come from, named in errors (LLM endpoints reuse
        this grammar with DATAMATE_LLM_ALLOWED_HOSTS)."""
        any_host, names, suffixes, networks = False, set(), [], []
        for raw in entries:
            entry = _ascii(raw.strip().lower().strip("[]"))
            if not entry:
                continue
            if entry == "*":
                any_host = True
            elif entry.startswith("*.") and _is_host_name(entry[2:]):
                suffixes.append(entry[1:])
            elif _is_host_name(entry):
                names.add(entry)
            else:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise FetchError(
                        f"{setting}: {raw.strip()!r} is not a host name, *.domain pattern, IP address or network"
                    ) from None
        return cls(any_host, frozenset(names), tuple(suffixes), tuple(networks))

    @classmethod
    def from_settings(cls) -> Allowlist:
        return cls.parse(settings.DATAMATE_COLLECT_ALLOWED_HOSTS)

    def allows_host(self, host: str) -> bool:
        """`host`: a lower-case ASCII (IDNA) name, or an IP address."""
        address = _literal_address(host)
        if address is not None:
            return self.any_host or self.allows_address(address)
        return self.any_host or host in self.names or host.endswith(self.suffixes)

    def allows_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def _ascii(entry: str) -> str:
    """An internationalised name in the ASCII (IDNA) form that URLs are compared in."""
    try:
        return entry.encode("idna").decode("ascii") if not entry.isascii() else entry
    except UnicodeError:
        return entry


def _is_host_name(text: str) -> bool:
    labels = text.split(".")
    if labels[-1].isdigit():
        return False  # 10.0.0.1 is an address, not a name
    return all(label and len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() for label in labels)


def literal_address(url: httpx.URL) -> Address | None:
    """The address a URL names as its host (`http://127.0.0.1/`), or None for a name."""
    return _literal_address(_ascii_host(url))


def _literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


#: Not globally reachable (IANA special-purpose registry) though this Python's `ipaddress`
#: may call them global: 192.0.0.0/24 holds cloud metadata services (192.0.0.192).
_ALSO_NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"),)


def address_problem(address: Address) -> str | None:
    """Why connecting to `address` is refused by default, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms of an IPv4 address (::ffff:127.0.0.1, 6to4, Teredo) are judged by it.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            address = embedded
    checks = [
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    ]
    for attribute, problem in checks:
        if getattr(address, attribute):
            return problem
    if any(address in network for network in _ALSO_NOT_PUBLIC):
        return "not a public address"
    return None if address.is_global else "not a public address"


def url_problem(raw: str) -> str | None:
    """What makes `raw` unusable as a collection URL, whatever the allowlist says."""
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as error:
        return f"not a valid URL ({error})"
    if url.scheme not in ("http", "https") or not url.host:
        return "not an http(s) URL"
    if url.userinfo:
        return "credentials in a URL are not allowed (the pipeline's editors would all read them)"
    return None


@dataclass
class Fetched:
    """A response whose body is still to be read: `stream` reads it, within the limits."""

    url: str
    final_url: str
    content_type: str
    charset: str | None
    stream: IO[bytes]
    _body: _LimitedBody = field(repr=False)

    @property
    def size(self) -> int:
        """Bytes read so far."""
        return self._body.size

    def text(self) -> str:
        data = self.stream.read()
        try:
            return data.decode(self.charset or "utf-8")
        except LookupError:
            raise FetchError(f"{self.url}: unknown charset {self.charset!r}") from None
        except UnicodeDecodeError as error:
            encoding = self.charset or "utf-8"
            raise FetchError(f"{self.url}: not {encoding} text ({error.reason} at byte {error.start})") from None

    @contextlib.contextmanager
    def spooled(self) -> Iterator[IO[bytes]]:
        """The whole body in an anonymous temporary file, for readers that seek (Parquet)."""
        with tempfile.TemporaryFile(prefix="datamate-fetch-") as spool:
            shutil.copyfileobj(self.stream, spool, _READ_BUFFER)
            spool.seek(0)
            yield spool


@contextlib.contextmanager
def open_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    headers: dict[str, str] | None = None,
    allowlist: Allowlist | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Iterator[Fetched]:
    """GET `url` under the rules above. `verify` is for tests that trust their own CA."""
    policy = allowlist or Allowlist.from_settings()
    request_headers = {"User-Agent": USER_AGENT, **_checked_headers(url, headers or {})}
    deadline = time.monotonic() + timeout
    current = url
    with contextlib.ExitStack() as stack:
        for hop in range(MAX_REDIRECTS + 1):
            where = url if hop == 0 else f"{url} (redirected to {current})"
            target = _allowed_url(where, current, policy)
            addresses = checked_addresses(where, target, policy)
            # A client per hop: a pooled connection made for one host name never serves another.
            client = stack.enter_context(httpx.Client(trust_env=False, follow_redirects=False, verify=verify))
            response = _send(where, client, target, addresses, request_headers, deadline, timeout)
            stack.callback(response.close)
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                location = response.headers["location"]
                response.close()
                try:
                    current = str(target.join(location))
                except httpx.InvalidURL:
                    raise FetchError(f"{where}: redirected to an invalid URL {location!r}") from None
                continue
            if response.status_code >= 300:
                raise FetchError(f"{where}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{where}: the body ({declared} bytes) is larger than max_bytes ({max_bytes})")
            body = _LimitedBody(where, response, max_bytes, deadline, timeout)
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            charset = response.charset_encoding
            yield Fetched(url, str(target), media_type, charset, io.BufferedReader(body, _READ_BUFFER), body)
            return
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _checked_headers(url: str, headers: dict[str, str]) -> dict[str, str]:
    allowed = {name.lower(): name for name in ALLOWED_HEADERS}
    for name in headers:
        if name.lower() not in allowed:
            raise FetchError(f"{url}: header {name!r} may not be set (allowed: {', '.join(ALLOWED_HEADERS)})")
    return {allowed[name.lower()]: value for name, value in headers.items()}


def _allowed_url(where: str, raw: str, policy: Allowlist) -> httpx.URL:
    problem = url_problem(raw)
    if problem:
        raise FetchError(f"{where}: {problem}")
    url = httpx.URL(raw)
    check_host(where, url, policy)
    return url


def check_host(where: str, url: httpx.URL, policy: Allowlist, setting: str = SETTING) -> None:
    """Raise FetchError if the allowlist does not name the URL's host."""
    host = _ascii_host(url)
    if not policy.allows_host(host):
        raise FetchError(f"{where}: host {host} is not allowed ({setting})")


def _ascii_host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").lower()


def checked_addresses(where: str, url: httpx.URL, policy: Allowlist, setting: str = SETTING) -> list[Address]:
    """Every address the host stands for, each one public or explicitly allowed."""
    host = _ascii_host(url)
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise FetchError(f"{where}: cannot resolve {host} ({error})") from None
        # Drop an IPv6 zone ("fe80::1%eth0"): the address itself is what is checked.
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in found))
    for address in addresses:
        problem = address_problem(address)
        if problem and not policy.allows_address(address):
            what = f"{host} is" if literal is not None else f"{host} resolves to {address},"
            raise FetchError(f"{where}: {what} {problem}; refused (allow its network in {setting})")
    return addresses


def pinned(url: httpx.URL, address: Address) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """What a request to `url` is sent as so that it reaches `address`, a checked address of
    its host, and nothing a later DNS answer names: (the URL with the address as its host,
    the Host header, the request extensions that keep TLS on the name)."""
    host = _ascii_host(url)
    # TLS checks the certificate against the name, not the address.
    extensions = {"sni_hostname": host} if url.scheme == "https" and _literal_address(host) is None else {}
    return url.copy_with(host=str(address)), {"Host": url.netloc.decode("ascii")}, extensions


def _send(
    where: str,
    client: httpx.Client,
    url: httpx.URL,
    addresses: list[Address],
    headers: dict[str, str],
    deadline: float,
    timeout: float,
) -> httpx.Response:
    """Send the request to the checked addresses in turn, until one accepts the connection."""
    failures = []
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        target, host_header, extensions = pinned(url, address)
        request = client.build_request(
            "GET",
            target,
            headers={**headers, **host_header},
            extensions=extensions,
            timeout=httpx.Timeout(remaining),
        )
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as error:
            failures.append(f"{address}: {error}")
        except httpx.TimeoutException:
            break
        except httpx.HTTPError as error:
            raise FetchError(f"{where}: {error}") from None
    if failures and len(failures) == len(addresses):
        raise FetchError(f"{where}: cannot connect ({'; '.join(failures)})")
    raise FetchError(f"{where}: no answer within {timeout:g} s (timeout_seconds)")


class _LimitedBody(io.RawIOBase):
    """The response body as a raw binary stream that stops at the size and time limits."""

    def __init__(self, where: str, response: httpx.Response, max_bytes: int, deadline: float, timeout: float):
        self.where = where
        self.chunks = response.iter_bytes()
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.timeout = timeout
        self.size = 0
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            try:
                chunk = next(self.chunks, None)
            except httpx.TimeoutException:
                raise FetchError(f"{self.where}: no answer within {self.timeout:g} s (timeout_seconds)") from None
            except httpx.HTTPError as error:
                raise FetchError(f"{self.where}: the download broke off ({error})") from None
            if chunk is None:
                return 0
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise FetchError(f"{self.where}: the body is larger than max_bytes ({self.max_bytes} bytes)")
            if time.monotonic() > self.deadline:
                raise FetchError(f"{self.where}: not downloaded within {self.timeout:g} s (timeout_seconds)")
            self.pending = memoryview(chunk)
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count
