"""Which URLs may receive events: https, and not resolving to loopback, private, link-local
or other non-public addresses (a webhook must not be a way into the service's own network),
unless EVENTS_ALLOW_PRIVATE_URLS (local development and tests: then http too). Checked when an
endpoint is created or changed, and again at each connection (app/services/events/transport.py)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import InvalidInputError

MAX_URL_LENGTH = 2000


def _refuse(reason: str) -> InvalidInputError:
    return InvalidInputError(f"Invalid endpoint URL: {reason}.", code="invalid_url")


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL if it may receive events; 422 invalid_url otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("not a URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise _refuse("it must be https")
    if not parts.hostname:
        raise _refuse("no host")
    if parts.username or parts.password:
        raise _refuse("credentials in the URL are not accepted; use the signature")
    if allow_private:
        return url
    try:
        public_addresses(parts.hostname, port or 443)
    except (socket.gaierror, UnicodeError):
        raise _refuse(f"{parts.hostname} does not resolve") from None
    except NonPublicAddressError as exc:
        raise _refuse(
            f"{parts.hostname} resolves to a non-public address ({exc.address})"
        ) from None
    return url


class NonPublicAddressError(Exception):
    """A host resolves to a loopback, private, link-local or other non-public address."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"the URL's host resolves to a non-public address ({address}): not connected"
        )
        self.address = address


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now, every one public; NonPublicAddressError when one
    is not, socket.gaierror (or UnicodeError) when it does not resolve."""
    resolved = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    addresses = list(dict.fromkeys(str(address[0]) for *_, address in resolved))
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not ip.is_global or ip.is_multicast:
            raise NonPublicAddressError(str(ip))
    return addresses
