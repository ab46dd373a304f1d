"""Data Collection and dataset imports turned against the server: reading files outside the
import roots, and fetching from the server's own network (SSRF).

Table-driven, through the real functions Data Collection and the dataset import call
(`collection._matches` for a node's `paths`, which resolves like the dataset import by path
does, and `fetch.open_url` for a node's `urls`), against a real folder tree with real symlinks
and a real HTTP server on 127.0.0.1. The corpora here add what tests/nodes/test_fetch.py and
tests/datasets/ do not already try (other address spellings, IPv6 embeddings, redirects to
them, encoded and symlinked paths, NUL bytes); those files hold the rest.
"""

from __future__ import annotations

import os
import re

import pytest

from datasets import importers
from datasets.errors import DatasetError
from nodes import collection, fetch
from tests.datasets.conftest import import_root  # noqa: F401 (a fixture)
from tests.nodes.test_fetch import ROWS, allow, fetch_bytes, redirect, site  # noqa: F401 (fixtures)

# --- paths ------------------------------------------------------------------------------


@pytest.fixture
def tree(import_root, tmp_path):  # noqa: F811
    """An import root holding data, a secret outside it, and symlinks that lead out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text('{"secret": 1}\n')
    (import_root / "data.jsonl").write_text('{"id": 1}\n')
    (import_root / "sub").mkdir()
    (import_root / "sub" / "more.jsonl").write_text('{"id": 2}\n')
    os.symlink(outside / "secret.jsonl", import_root / "link-out.jsonl")
    os.symlink(outside, import_root / "linkdir")
    os.symlink(import_root.parent, import_root / "up")
    os.symlink("/", import_root / "sub" / "slash")
    return import_root, outside


DOTS = r"'\.\.' is not allowed"
OUTSIDE = r"is outside the import roots"
MISSING = r"no such file or folder"

PATH_CASES = [
    ("dot-dot", "../outside/secret.jsonl", DOTS),
    ("dot-dot-after-a-folder", "sub/../../outside/secret.jsonl", DOTS),
    ("dot-slash-dot-dot", "./../outside/secret.jsonl", DOTS),
    ("dot-dot-inside-absolute", "{root}/../outside/secret.jsonl", DOTS),
    ("dot-dot-in-a-glob", "../outside/*.jsonl", DOTS),
    ("dot-dot-after-a-glob", "sub/*/../../../outside/*", DOTS),
    ("percent-encoded-dots", "%2e%2e/outside/secret.jsonl", MISSING),
    ("percent-encoded-slash", "..%2foutside%2fsecret.jsonl", MISSING),
    ("fullwidth-dots", "\uff0e\uff0e/outside/secret.jsonl", MISSING),
    ("backslashes", "..\\outside\\secret.jsonl", MISSING),
    ("tilde", "~/secret.jsonl", MISSING),
    ("absolute-outside", "{outside}/secret.jsonl", OUTSIDE),
    ("etc-passwd", "/etc/passwd", OUTSIDE),
    ("double-slash", "//etc/passwd", OUTSIDE),
    ("proc-environ", "/proc/self/environ", OUTSIDE),
    ("absolute-glob", "/etc/*", OUTSIDE),
    ("symlinked-file", "link-out.jsonl", OUTSIDE),
    ("symlinked-parent", "linkdir/secret.jsonl", OUTSIDE),
    ("symlink-to-the-roots-parent", "up/outside/secret.jsonl", OUTSIDE),
    ("symlink-to-slash", "sub/slash/etc/passwd", OUTSIDE),
    ("glob-matching-a-symlink", "link*.jsonl", OUTSIDE),
    ("glob-through-a-symlinked-folder", "*/secret.jsonl", OUTSIDE),
    ("nul-byte", "data.jsonl\x00.txt", r"a NUL byte is not allowed"),
    ("nul-byte-in-a-glob", "sub/*\x00", r"a NUL byte is not allowed"),
]


@pytest.mark.parametrize(("name", "raw", "problem"), PATH_CASES, ids=[case[0] for case in PATH_CASES])
def test_paths_out_of_the_import_roots_are_refused(tree, name, raw, problem):
    root, outside = tree
    raw = raw.format(root=root, outside=outside)
    with pytest.raises(DatasetError) as refused:
        collection._matches(raw)
    assert refused.value.field == "path"
    assert re.search(problem, refused.value.message), (name, refused.value.message)


def test_paths_inside_the_roots_still_work(tree):
    root, _ = tree
    assert collection._matches("data.jsonl") == [(root / "data.jsonl", root)]
    assert collection._matches(f"{root}/sub/more.jsonl") == [(root / "sub" / "more.jsonl", root)]
    assert collection._matches("sub/*.jsonl") == [(root / "sub" / "more.jsonl", root)]
    assert importers.resolve_server_path("sub") == (root / "sub", root)


def test_a_nul_byte_in_an_import_path_is_a_400_naming_path(alice_api, alice, tree):
    from datasets import services

    dataset = services.create_dataset(owner=alice, name="target")
    response = alice_api.post(f"/api/datasets/{dataset.pk}/versions/", {"path": "data\x00.jsonl"}, format="json")
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["field"] == "path" and "NUL byte" in error["message"]


# --- URLs -------------------------------------------------------------------------------

#: Spellings of addresses the server's own network answers on; each names the site's port,
#: so a request that got through would reach the test server.
ADDRESS_CASES = [
    ("decimal-ipv4", "2130706433", "resolves to 127.0.0.1, a loopback address"),
    ("hex-ipv4", "0x7f000001", "resolves to 127.0.0.1, a loopback address"),
    ("hex-dotted-ipv4", "0x7f.1", "resolves to 127.0.0.1, a loopback address"),
    ("octal-ipv4", "017700000001", "resolves to 127.0.0.1, a loopback address"),
    ("short-ipv4", "127.1", "resolves to 127.0.0.1, a loopback address"),
    ("zero", "0", "resolves to 0.0.0.0, an unspecified address"),
    ("upper-case-localhost", "LOCALHOST", "resolves to 127.0.0.1, a loopback address"),
    ("ipv6-unspecified", "[::]", "an unspecified address"),
    ("ipv6-unique-local-fc00", "[fc00::1]", "a private address"),
    ("ipv4-compatible-ipv6", "[::127.0.0.1]", "a reserved address"),
    ("ipv4-mapped-hex", "[::ffff:7f00:1]", "a loopback address"),
    ("ipv4-mapped-metadata", "[::ffff:169.254.169.254]", "a link-local address"),
    ("ipv4-mapped-private", "[::ffff:10.0.0.1]", "a private address"),
    ("6to4-of-loopback", "[2002:7f00:1::]", "a loopback address"),
    ("teredo-of-loopback", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", "a loopback address"),
    ("nat64-of-loopback", "[64:ff9b::7f00:1]", "a reserved address"),
    ("ipv6-link-local-with-zone", "[fe80::1%25lo]", "a link-local address"),
    ("private-172-top", "172.31.255.255", "a private address"),
    ("carrier-grade-nat-metadata", "100.100.100.200", "not a public address"),
    ("aws-ipv6-metadata", "[fd00:ec2::254]", "a private address"),
    ("oracle-metadata", "192.0.0.192", "not a public address"),
    ("benchmarking-range", "198.18.0.1", "a private address"),
]


@pytest.mark.parametrize(("name", "host", "problem"), ADDRESS_CASES, ids=[case[0] for case in ADDRESS_CASES])
def test_other_spellings_of_internal_addresses_are_refused(site, allow, name, host, problem):  # noqa: F811
    allow("*")
    url = f"http://{host}:{site.port}/rows.jsonl"
    with pytest.raises(fetch.FetchError) as refused:
        fetch_bytes(url)
    message = str(refused.value)
    assert message.startswith(f"{url}: ") and problem in message and "refused" in message, message
    assert site.requests == []


REDIRECT_TARGETS = [
    ("redirect-to-decimal-ipv4", "http://2130706434/", "127.0.0.2, a loopback address"),
    ("redirect-to-hex-ipv4", "http://0x7f.2/", "127.0.0.2, a loopback address"),
    ("redirect-to-ipv6-loopback", "http://[::1]/", "a loopback address"),
    ("redirect-to-mapped-metadata", "http://[::ffff:a9fe:a9fe]/latest/meta-data/", "a link-local address"),
    ("redirect-to-private", "http://10.1.2.3/admin", "a private address"),
    ("redirect-to-zero", "http://0/", "an unspecified address"),
    ("redirect-to-file", "file:///etc/passwd", "not an http(s) URL"),
    ("redirect-with-credentials", "http://user:pw@example.org/", "credentials in a URL are not allowed"),
]


@pytest.mark.parametrize(("name", "location", "problem"), REDIRECT_TARGETS, ids=[case[0] for case in REDIRECT_TARGETS])
def test_redirects_to_internal_addresses_are_refused(site, allow, name, location, problem):  # noqa: F811
    allow("*", "127.0.0.1/32")  # the first hop is allowed; where it redirects to is not
    site.routes["/jump"] = redirect(location)
    with pytest.raises(fetch.FetchError) as refused:
        fetch_bytes(site.url("/jump"))
    assert f"(redirected to {location})" in str(refused.value) or problem in str(refused.value)
    assert problem in str(refused.value), str(refused.value)
    assert [request["path"] for request in site.requests] == ["/jump"]


def test_an_explicitly_allowed_network_is_reachable_under_any_spelling(site, allow):  # noqa: F811
    allow("*", "127.0.0.1/32")
    assert fetch_bytes(f"http://2130706433:{site.port}/rows.jsonl") == ROWS
    assert fetch_bytes(f"http://localhost:{site.port}/rows.jsonl") == ROWS
    assert len(site.requests) == 2


def test_the_corpora_are_counted():
    assert len(PATH_CASES) + len(ADDRESS_CASES) + len(REDIRECT_TARGETS) >= 50
