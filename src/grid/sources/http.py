"""Getting an http(s) URL safely: the address check, redirects followed hop by hop, and the
download client. The body is read by ``grid.sources.http_stream`` (forward, resuming after a
dropped connection) or ``grid.sources.http_ranges`` (seekable, over Range requests).

Redirects are followed by hand (at most ``MAX_REDIRECTS``) so that every hop passes the address
check: unless private addresses are allowed (embedded mode runs as the user, so it allows
them), a URL whose host resolves to a loopback, private, link-local (cloud metadata),
multicast or reserved address is refused, and the connection itself goes only to an address
that passed (no DNS rebinding between check and connect). A redirect to another scheme
(``data:``, ``mailto:``, ``ftp:``) is refused, naming its target.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from grid.errors import SourceError, UsageError

MAX_REDIRECTS = 10
_TIMEOUT = httpx.Timeout(30.0, connect=15.0)


def check_url(url: str, allow_private: bool) -> None:
    """Refuse what is not an http(s) URL, and (unless ``allow_private``) a host that resolves
    to an address inside the machine's or the cloud's own networks.

    Raises:
        UsageError: the URL is malformed, of another scheme, or refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL", rule="SOURCE URL is http(s)://host/...")
    if not allow_private:
        public_addresses(parts.hostname, parts.port or 443, url)


def public_addresses(host: str, port: int, what: str) -> list[str]:
    """The addresses ``host`` resolves to, if every one is public.

    Raises:
        UsageError: it does not resolve, or one of its addresses is internal.
    """
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot resolve {host}: {exc}", rule="SOURCE URL") from exc
    found = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise UsageError(
                f"{what} resolves to {address}, an internal address: refused on this server "
                "(its operator can allow them: grid server --allow-private-urls)",
                rule="SOURCE URL must be on the public internet",
            )
        found.append(str(address))
    return found


class _PublicOnly(httpcore.SyncBackend):
    """Connects only to a checked address of the host, resolved here, once per connection: a
    name cannot pass the check with a public address and then connect to an internal one (DNS
    rebinding). TLS still verifies the host name."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        address = public_addresses(host, port, host)[0]
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def get(
    client: httpx.Client, url: str, headers: dict[str, str], allow_private: bool
) -> httpx.Response:
    """GET ``url`` as a stream, following redirects (each hop address-checked); the response
    is 200 or 206.

    Raises:
        UsageError: a refused address, too many redirects, or a 4xx answer.
        SourceError: the server failed (5xx) or could not be reached.
    """
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, allow_private)
        try:
            request = client.build_request("GET", url, headers=headers)
            response = client.send(request, stream=True)
        except httpx.InvalidURL as exc:  # a redirect httpx cannot parse (``client`` names it)
            raise UsageError(
                f"{url} redirects to an invalid URL: {exc}", rule="SOURCE URL must be downloadable"
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot download {url}: {exc}", path=url) from exc
        if response.is_redirect:
            response.close()
            url = urljoin(url, response.headers.get("location", ""))
            continue
        if response.status_code in (200, 206):
            return response
        response.close()
        problem = f"{url} answered HTTP {response.status_code} {response.reason_phrase}"
        if response.status_code < 500:
            raise UsageError(problem, rule="SOURCE URL must be downloadable")
        raise SourceError(f"{problem}: try again later", path=url)
    raise UsageError(
        f"{url}: more than {MAX_REDIRECTS} redirects", rule="SOURCE URL must be downloadable"
    )


def _refuse_odd_redirect(response: httpx.Response) -> None:
    """Refuse a redirect to anything but an http(s) URL, naming it (httpx would fail on some,
    such as ``data:`` or ``mailto:``, while preparing the next request)."""
    if not response.has_redirect_location:
        return
    location = response.headers["location"]
    try:
        target = urljoin(str(response.request.url), location)
        ok = urlsplit(target).scheme in ("http", "https") and bool(httpx.URL(target).host)
    except (ValueError, httpx.InvalidURL):
        ok = False
    if not ok:
        raise UsageError(
            f"{response.request.url} redirects to {location!r}, which is not a valid http(s) "
            "URL: refused",
            rule="SOURCE URL must be downloadable",
        )


def client(allow_private: bool = True) -> httpx.Client:
    """An HTTP client for downloads (redirects are followed by ``get``, hop by hop, and refused
    unless to http(s)); unless ``allow_private``, it connects to public addresses only."""
    transport = httpx.HTTPTransport()
    if not allow_private:
        # httpx has no public hook for the connecting backend: its pool is rebuilt with one
        transport._pool = httpcore.ConnectionPool(network_backend=_PublicOnly())
    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=False,
        transport=transport,
        event_hooks={"response": [_refuse_odd_redirect]},
    )
