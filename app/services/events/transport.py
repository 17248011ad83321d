"""The HTTP client deliveries go through: urllib3's pools, one kept-alive connection per slot
and endpoint host. Unless EVENTS_ALLOW_PRIVATE_URLS, each new connection resolves the
endpoint's host, refuses if any address is not public (an endpoint that passed the check at
creation may resolve elsewhere later: DNS rebinding), and connects to an address it checked,
so a second DNS answer cannot differ. TLS still verifies the certificate for the host name.
Through a proxy (HTTPS_PROXY / HTTP_PROXY, minus NO_PROXY, read from the environment once
per host), the proxy connects, not this check.

urllib3, not requests: an attempt is one POST of bytes that are ready, and requests' layers
(hooks, cookies, the environment and `.netrc` read again on every request) cost more CPU
than the rest of the attempt (783 µs against urllib3's 334 µs per POST on the bench machine):
CPU the process's webhooks and reads need."""

import socket
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from app.services.events.urls import public_addresses

# Connections kept open per endpoint host: one per delivery slot in flight to it.
POOL_SIZE = 16
# The CA bundle TLS is verified against (certifi's, as requests uses): the same trust
# whatever the host's own store holds.
CA_CERTS = certifi.where()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]


class DeliveryTransport:
    """POSTs to endpoints; thread-safe (one per process, shared by the delivery slots)."""

    def __init__(self, *, allow_private: bool, pool_size: int = POOL_SIZE) -> None:
        self._pool_size = pool_size
        self._direct = urllib3.PoolManager(maxsize=pool_size, block=False, ca_certs=CA_CERTS)
        if not allow_private:
            self._direct.pool_classes_by_scheme = {
                "http": _CheckedHTTPPool,
                "https": _CheckedHTTPSPool,
            }
        self._environment = urllib.request.getproxies()
        self._routes: dict[tuple[str, str], urllib3.PoolManager] = {}
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._lock = Lock()

    def post(
        self, url: str, *, body: bytes, headers: Mapping[str, str], connect: float, read: float
    ) -> Answer:
        """POST `body`; the answer (its body read and dropped, so the connection is reused).
        No retry, no redirect followed; urllib3's errors (and NonPublicAddressError) raised."""
        response = self._manager(url).request(
            "POST",
            url,
            body=body,
            headers=dict(headers),
            timeout=urllib3.Timeout(connect=connect, read=read),
            redirect=False,
            retries=False,
        )
        return Answer(response.status, response.headers)

    def close(self) -> None:
        self._direct.clear()
        for proxy in self._proxies.values():
            proxy.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        route = (parts.scheme, parts.netloc)
        manager = self._routes.get(route)
        if manager is None:
            manager = self._route(parts.scheme, parts.hostname or "")
            with self._lock:
                self._routes[route] = manager
        return manager

    def _route(self, scheme: str, host: str) -> urllib3.PoolManager:
        proxy = self._environment.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return self._direct
        with self._lock:
            if proxy not in self._proxies:
                self._proxies[proxy] = urllib3.ProxyManager(
                    proxy, maxsize=self._pool_size, block=False, ca_certs=CA_CERTS
                )
            return self._proxies[proxy]


def _connect_checked(connection: HTTPConnection, connect: Callable[[], socket.socket]) -> Any:
    """`connect()` to each checked address of the connection's host in turn, until one
    answers; NonPublicAddressError (from `public_addresses`) before any is tried."""
    host = connection._dns_host
    try:
        addresses = public_addresses(host, connection.port or 443)
    except (socket.gaierror, UnicodeError) as exc:
        raise NameResolutionError(connection.host, connection, socket.gaierror(str(exc))) from exc
    failed: ConnectTimeoutError | None = None
    try:
        for address in addresses:
            connection._dns_host = address  # the name urllib3 resolves: now the checked address
            try:
                return connect()
            except ConnectTimeoutError as exc:  # NewConnectionError too
                failed = exc
    finally:
        connection._dns_host = host
    assert failed is not None  # getaddrinfo answers at least one address or raises
    raise failed


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock: socket.socket = _connect_checked(self, super()._new_conn)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock: socket.socket = _connect_checked(self, super()._new_conn)
        return sock


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection
