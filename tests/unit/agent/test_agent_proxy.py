"""Which proxy the gateway client uses: HTTPS_PROXY / https_proxy, NO_PROXY, credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ferry_agent.transport import (
    ConfigurationError,
    GatewayClient,
    Proxy,
    parse_proxy_url,
    proxy_from_environment,
)


def test_credentials_are_decoded_and_sent_as_basic() -> None:
    proxy = parse_proxy_url("http://ferry%40corp:p%3Ass%20word@proxy.corp:3128")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.corp",
        3128,
        "ferry@corp",
        "p:ss word",
    )
    header = proxy.tunnel_headers()["Proxy-Authorization"]
    assert header == "Basic " + base64.b64encode(b"ferry@corp:p:ss word").decode()


def test_the_password_never_shows() -> None:
    proxy = parse_proxy_url("http://ferry:hunter2@proxy.corp:3128")
    assert "hunter2" not in str(proxy) and "hunter2" not in repr(proxy)
    assert str(proxy) == "http://proxy.corp:3128"


def test_no_credentials_no_header_and_defaults() -> None:
    assert parse_proxy_url("proxy.corp").tunnel_headers() == {}
    assert parse_proxy_url("proxy.corp") == Proxy("proxy.corp", 80)
    assert parse_proxy_url("http://10.0.0.1:8080/") == Proxy("10.0.0.1", 8080)


@pytest.mark.parametrize(
    "url",
    [
        "https://ferry:hunter2@proxy.corp:443",
        "socks5://ferry:hunter2@proxy.corp:1080",
        "http://ferry:hunter2@proxy.corp:notaport",
        "http://ferry:hunter2@proxy.corp:3128/some/path",
        "http://ferry:hunter2@:3128",
    ],
)
def test_unusable_proxy_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_proxy_url(url, source="HTTPS_PROXY")
    assert "HTTPS_PROXY" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_lower_case_wins_like_curl_and_urllib() -> None:
    environ = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}
    assert proxy_from_environment("gw.example.com", 443, environ) == Proxy("lower", 1)
    assert proxy_from_environment("gw.example.com", 443, {"HTTPS_PROXY": "http://upper:2"}) == (
        Proxy("upper", 2)
    )
    assert proxy_from_environment("gw.example.com", 443, {"HTTP_PROXY": "http://plain:3"}) is None
    assert proxy_from_environment("gw.example.com", 443, {"https_proxy": "  "}) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("gw.example.com", 443, "example.com", True),
        ("gw.example.com", 443, ".example.com", True),
        ("gw.example.com", 443, "*.example.com", True),
        ("gw.example.com", 443, "EXAMPLE.COM", True),
        ("example.com", 443, ".example.com", True),
        ("gw.example.com", 443, "other.com, example.com", True),
        ("gw.example.com", 443, "other.com example.com", True),
        ("badexample.com", 443, "example.com", False),
        ("gw.example.com", 443, "example.com:443", True),
        ("gw.example.com", 443, "example.com:8443", False),
        ("gw.example.com", 443, "*", True),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "192.168.0.0/16", False),
        ("10.1.2.3", 443, "10.1.2.3", True),
        ("::1", 443, "[::1]:443", True),
        ("::1", 443, "::1", True),
        ("gw.example.com", 443, "10.0.0.0/8", False),
        ("gw.example.com", 443, "", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    environ = {"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": no_proxy}
    found = proxy_from_environment(host, port, environ)
    assert (found is None) is bypassed


def test_the_client_reads_its_proxy_from_the_environment_it_is_given() -> None:
    environ = {"HTTPS_PROXY": "http://ferry:hunter2@proxy.corp:3128"}
    client = GatewayClient("https://gw.example.com/ferry/", environ=environ)
    assert client.proxy == Proxy("proxy.corp", 3128, "ferry", "hunter2")
    assert client.url == "https://gw.example.com:443/ferry"
    assert (
        repr(client) == "GatewayClient(https://gw.example.com:443/ferry via http://proxy.corp:3128)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://gw.example.com",
        "https://user:pw@gw.example.com",
        "https://gw.example.com/?a=1",
        "gw",
    ],
)
def test_unusable_gateway_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewayClient(url, environ={})
    assert "pw" not in str(caught.value)


def test_a_missing_ca_bundle_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigurationError) as caught:
        GatewayClient("https://gw.example.com", ca_file=missing, environ={})
    assert str(missing) in str(caught.value)
