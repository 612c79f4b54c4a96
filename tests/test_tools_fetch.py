"""The fetch built-in against a local aiohttp server, and file:// under a root."""

import asyncio
import os
import time

import pytest
from aiohttp import web

from fcsft.tools import fetch_tool
from fcsft.tools._address_policy import AddressPolicy, AddressRefused, GuardedResolver

PAGE = (
    "<html><head><title>Docs</title><style>p {}</style></head>"
    "<body><h1>Hello</h1><p>World</p></body></html>"
)


async def serve(routes):
    """Start an aiohttp app on 127.0.0.1 with a free port; returns (base_url, runner)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return f"http://127.0.0.1:{port}", runner


async def page(request):
    return web.Response(text=PAGE, content_type="text/html")


async def big(request):
    return web.Response(text="x" * 200_000, content_type="text/plain")


async def slow(request):
    await asyncio.sleep(10)
    return web.Response(text="late")


async def image(request):
    return web.Response(body=b"\x89PNG....", content_type="image/png")


async def missing(request):
    return web.Response(status=404, text="no such page", content_type="text/plain")


async def to_page(request):
    raise web.HTTPFound("/page")


async def to_other_loopback(request):
    raise web.HTTPFound("http://127.0.0.2:9/secret")


ROUTES = {
    "/page": page,
    "/big": big,
    "/slow": slow,
    "/image": image,
    "/missing": missing,
    "/to-page": to_page,
    "/to-other": to_other_loopback,
}


def fetch_all(urls_by_tool):
    """Serve ROUTES, then fetch each (tool, path) pair; returns results in order."""

    async def scenario():
        base, runner = await serve(ROUTES)
        try:
            return [await tool.run({"url": base + path}) for tool, path in urls_by_tool]
        finally:
            await runner.cleanup()

    return asyncio.run(scenario())


LOCAL = fetch_tool(allow_networks=["127.0.0.1/32"])


def test_an_allowed_local_server_is_fetched_as_text():
    [result] = fetch_all([(LOCAL, "/page")])
    assert not result.error
    assert result.content == "Docs\n\nHello\nWorld"


def test_the_same_url_is_refused_by_default():
    [result] = fetch_all([(fetch_tool(), "/page")])
    assert result.error
    assert result.content == "refused: 127.0.0.1 (loopback) is not allowed"


def test_redirects_are_followed_and_each_hop_is_checked():
    same, other = fetch_all([(LOCAL, "/to-page"), (LOCAL, "/to-other")])
    assert same.content.endswith("World")
    assert other.error and other.content == "refused: 127.0.0.2 (loopback) is not allowed"


def test_size_limit_truncates_and_says_so():
    [result] = fetch_all([(fetch_tool(allow_networks=["127.0.0.1"], max_bytes=1000), "/big")])
    assert result.content == "x" * 1000 + "\n[truncated: the content is larger than 1000 bytes]"


def test_time_limit():
    tool = fetch_tool(allow_networks=["127.0.0.1"], timeout_s=0.3)

    async def scenario():
        base, runner = await serve(ROUTES)
        started = time.monotonic()
        result = await tool.run({"url": base + "/slow"})
        elapsed = time.monotonic() - started
        await runner.cleanup()
        return result, elapsed

    result, elapsed = asyncio.run(scenario())
    assert result.error and "timed out after 0.3s" in result.content
    assert elapsed < 5  # the route answers after 10 s


def test_non_text_and_http_errors_are_error_results():
    picture, absent = fetch_all([(LOCAL, "/image"), (LOCAL, "/missing")])
    assert picture.error and picture.content.endswith("is image/png, not text")
    assert absent.error and absent.content == "HTTP 404 Not Found\n\nno such page"


# Spellings of 127.0.0.1 that the HTTP client connects to without asking a resolver.
LOOPBACK_SPELLINGS = [
    "１２７.０.０.１",  # full-width digits: IDNA maps them to ASCII
    "127。0。0。1",  # ideographic full stops
    "１２７．０．０．１",  # full-width full stops
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::127.0.0.1]",  # IPv4-compatible
    "[64:ff9b::127.0.0.1]",  # NAT64
    "[2002:7f00:1::1]",  # 6to4
    "[2001:0:7f00:1::1]",  # Teredo, server 127.0.0.1
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1 (obfuscated)
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_no_spelling_of_a_loopback_address_reaches_a_server_on_it(host):
    """A server really listens on 127.0.0.1; a default fetcher given its address spelt another
    way must refuse without a single request arriving."""
    hits = []

    async def counted(request):
        hits.append(request.path)
        return await page(request)

    async def scenario():
        base, runner = await serve({"/page": counted})
        port = base.rsplit(":", 1)[1]
        try:
            control = await LOCAL.run({"url": f"{base}/page"})
            result = await fetch_tool().run({"url": f"http://{host}:{port}/page"})
        finally:
            await runner.cleanup()
        return control, result

    control, result = asyncio.run(scenario())
    assert not control.error and hits == ["/page"]  # the server is there to be reached
    assert result.error, result.content
    assert result.content.startswith("refused: 127.0.0.1 (loopback"), result.content
    assert hits == ["/page"]


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("::127.0.0.1", "127.0.0.1 (loopback, inside ::7f00:1)"),
        ("64:ff9b::10.0.0.1", "10.0.0.1 (not a public address, inside 64:ff9b::a00:1)"),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b:1::8.8.8.8", "64:ff9b:1::808:808 (a site's own NAT64 prefix)"),
        ("2002:a9fe:a9fe::1", "169.254.169.254 (link-local, inside 2002:a9fe:a9fe::1)"),
        ("2002:808:808::1", None),
        (
            "2001:0:808:808:8000:63bf:80ff:fffe",
            "127.0.0.1 (loopback, inside 2001:0:808:808:8000:63bf:80ff:fffe)",
        ),
    ],
)
def test_ipv4_carried_in_ipv6_is_judged_too(address, refused):
    assert AddressPolicy().refusal(address) == refused


def test_names_that_resolve_to_private_addresses_are_refused():
    result = asyncio.run(fetch_tool().run({"url": "http://localhost:9/"}))
    assert result.error and "localhost resolves to 127.0.0.1 (loopback)" in result.content


def test_every_resolved_address_is_checked():
    """A name with one public and one private answer is refused: DNS may hand out either."""

    class TwoAnswers:
        async def resolve(self, host, port=0, family=0):
            return [
                {
                    "host": "93.184.215.14",
                    "hostname": host,
                    "port": port,
                    "family": family,
                    "proto": 0,
                    "flags": 0,
                },
                {
                    "host": "10.1.2.3",
                    "hostname": host,
                    "port": port,
                    "family": family,
                    "proto": 0,
                    "flags": 0,
                },
            ]

    resolver = GuardedResolver(AddressPolicy(), inner=TwoAnswers())
    with pytest.raises(AddressRefused, match=r"rebind\.example resolves to 10\.1\.2\.3"):
        asyncio.run(resolver.resolve("rebind.example", 80))


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "127.0.0.1 (loopback)"),
        ("::1", "::1 (loopback)"),
        ("::ffff:127.0.0.1", "127.0.0.1 (loopback)"),
        ("169.254.169.254", "169.254.169.254 (link-local)"),
        ("10.0.0.8", "10.0.0.8 (not a public address)"),
        ("192.168.1.1", "192.168.1.1 (not a public address)"),
        ("100.64.0.1", "100.64.0.1 (not a public address)"),
        ("0.0.0.0", "0.0.0.0 (not a public address)"),
    ],
)
def test_address_policy(address, refused):
    assert AddressPolicy().refusal(address) == refused


def test_allowed_networks_open_exactly_those_addresses():
    policy = AddressPolicy(["10.0.0.0/24"])
    assert policy.refusal("10.0.0.9") is None
    assert policy.refusal("10.0.1.9") is not None


@pytest.fixture
def tree(tmp_path):
    """root/ with a document and links; a secret beside it, outside the root."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "doc.md").write_text("inside the root")
    (tmp_path / "secret.txt").write_text("outside the root")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(root / "sub" / "doc.md", root / "alias.md")
    os.symlink(tmp_path, root / "up")
    return root


def read(root, url):
    return asyncio.run(fetch_tool(root=root).run({"url": url}))


def test_file_urls_under_the_root_are_read(tree):
    assert read(tree, f"file://{tree}/sub/doc.md").content == "inside the root"
    assert (
        read(tree, f"file://{tree}/alias.md").content == "inside the root"
    )  # a link inside stays inside


@pytest.mark.parametrize(
    "path",
    ["/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/escape.txt", "/up/secret.txt"],
)
def test_file_urls_that_leave_the_root_are_refused(tree, path):
    result = read(tree, f"file://{tree}{path}")
    assert (
        result.error
        and result.content.startswith("refused:")
        and "outside the fetch root" in result.content
    )
    assert "outside the root" not in result.content.replace("outside the fetch root", "")


def test_file_urls_without_a_root_or_for_another_host_are_refused(tree):
    assert asyncio.run(fetch_tool().run({"url": f"file://{tree}/sub/doc.md"})).content.startswith(
        "refused: file:// URLs are disabled"
    )
    assert "another host" in read(tree, f"file://example.com{tree}/sub/doc.md").content


def test_missing_files_and_other_schemes_are_error_results(tree):
    assert read(tree, f"file://{tree}/nope.md").content.startswith("cannot read")
    for url in ("file:///missing", "file:///sub/missing.md", f"file://{tree}/sub/no/such"):
        missing = read(tree, url)
        assert missing.error
        assert missing.content == f"cannot read {url}: no such file under the fetch root {tree}"
    assert (
        read(tree, "ftp://example.com/x").content
        == "unsupported URL scheme 'ftp'; use http or https"
    )


def test_file_urls_are_relative_to_the_root(tree):
    assert read(tree, "file:///sub/doc.md").content == "inside the root"
    assert "outside the fetch root" in read(tree, "file:///etc/passwd").content
    refused = read(tree, "file:///sub/../../secret.txt")
    assert refused.error and "outside the fetch root" in refused.content
