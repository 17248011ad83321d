"""Webhook signatures and secret comparison, shared by the service and the sandbox."""

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def sign_body(*, secret: str, body: bytes) -> str:
    """Return the `X-Hub-Signature-256` value Meta sends for `body` signed with `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_matches(*, secret: str, body: bytes, header: str | None) -> bool:
    """Check an `X-Hub-Signature-256` header against the raw body, in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = sign_body(secret=secret, body=body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def secrets_equal(given: str, expected: str) -> bool:
    """Compare two secrets in constant time (verify tokens, API keys)."""
    return hmac.compare_digest(given.encode(), expected.encode())
