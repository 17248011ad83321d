"""The HTTP session deliveries go through. Unless EVENTS_ALLOW_PRIVATE_URLS, each new
connection resolves the endpoint's host, refuses if any address is not public (an endpoint that
passed the check at creation may resolve elsewhere later: DNS rebinding), and connects to an
address it checked, so a second DNS answer cannot differ. TLS still verifies the certificate
for the host name. Through a proxy (HTTPS_PROXY), the proxy connects, not this check."""

import socket
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from app.services.events.urls import public_addresses


def delivery_session(*, allow_private: bool) -> requests.Session:
    """The session the deliverer POSTs with."""
    session = requests.Session()
    if not allow_private:
        adapter = PublicOnlyAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


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


class PublicOnlyAdapter(HTTPAdapter):
    """requests' adapter, its connections made only to public addresses it checked."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }
