"""The access token's lifecycle: stored, refreshed before it expires, marked when Meta rejects it.

An Instagram user token lives 60 days. The configured INSTAGRAM_USER_TOKEN is stored (keyed by
its sha256, encrypted with a key derived from it: `crypto`) with its expiry — assumed 60 days
until a refresh answer tells the real one. A background job (`refresh`) refreshes it with
`ig_refresh_token` once it is a day old and expires within TOKEN_REFRESH_DAYS_BEFORE_EXPIRY days
(or its expiry is only assumed: the first refresh learns the real one), one process at a time.
Every process reads the token in use from the database (`store`, cached for
TOKEN_CACHE_SECONDS), so a refreshed token is used everywhere without a restart. A newly
configured token starts a row of its own.

When Meta answers code 190 the token is marked invalid: `/ready` and `fab doctor` say so
(`status`) and the log says what to do. The mark only reports — calls still go out — and the
first call Meta accepts clears it.
"""

from app.services.tokens.crypto import fingerprint
from app.services.tokens.refresh import TokenRefresher, TokenWorker
from app.services.tokens.status import RE_AUTHENTICATE, TokenStatus
from app.services.tokens.store import ASSUMED_LIFETIME, TokenStore

__all__ = [
    "ASSUMED_LIFETIME",
    "RE_AUTHENTICATE",
    "TokenRefresher",
    "TokenStatus",
    "TokenStore",
    "TokenWorker",
    "fingerprint",
]
