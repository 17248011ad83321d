"""Each account's access token: stored sealed, refreshed before it expires, marked when Meta
rejects it.

An Instagram user token lives 60 days. Each account's token is stored in its `accounts` row,
sealed (`cipher`: TOKEN_ENCRYPTION_KEY, else a key derived from a secret the service holds),
with its expiry — assumed 60 days until a refresh answer tells the real one. A background job
(`refresh`) refreshes each token with `ig_refresh_token` once it is a day old and expires
within TOKEN_REFRESH_DAYS_BEFORE_EXPIRY days (or its expiry is only assumed), one process at a
time per account. Every process reads the tokens from the database (`store`, cached for
TOKEN_CACHE_SECONDS), so a refreshed or replaced token is used everywhere without a restart.
The environment's account (INSTAGRAM_USER_TOKEN) is adopted as an ordinary row.

When Meta answers code 190 the account is marked `needs_reauth`: `/ready`, `fab doctor` and
the accounts API say so (`status`) and the log says what to do. Other accounts are untouched;
the mark only reports — calls still go out — and the first call Meta accepts clears it.
"""

from app.services.token_status import RE_AUTHENTICATE, TokenStatus
from app.services.tokens.refresh import TokenRefresher, TokenWorker
from app.services.tokens.store import ASSUMED_LIFETIME, AccountToken, TokenStore, fingerprint

__all__ = [
    "ASSUMED_LIFETIME",
    "RE_AUTHENTICATE",
    "AccountToken",
    "TokenRefresher",
    "TokenStatus",
    "TokenStore",
    "TokenWorker",
    "fingerprint",
]
