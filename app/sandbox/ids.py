"""Identifiers shaped like Meta's, so the service meets realistic lengths and formats."""

import base64
import secrets
import string

# The IDs of real Graph errors look like "A9C5BFZGYCvRghcFEHTjgpC".
FBTRACE_ALPHABET = string.ascii_letters + string.digits
FBTRACE_LENGTH = 23

# Inbound-message thread ids in Meta's mids share this prefix (they are ~2^128 numbers).
THREAD_ID_PREFIX = "340282366841710301244276"

CDN_URL = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id={asset_id}&signature={signature}"


def random_digits(count: int) -> str:
    """A string of `count` random decimal digits."""
    return "".join(secrets.choice(string.digits) for _ in range(count))


def new_customer_id() -> str:
    """A customer IGSID: 16 digits, below 2^53 like every one seen in the wild."""
    return str(1 + secrets.randbelow(3)) + random_digits(15)


def new_account_id() -> str:
    """A business account's IG_ID: 17 digits starting 1784, like Meta's."""
    return "1784" + random_digits(13)


def new_app_scoped_id() -> str:
    """The app-scoped id `/me` answers as `id` (not the IG_ID webhooks carry)."""
    return "9" + random_digits(15)


def new_username() -> str:
    """An Instagram-like handle for a customer created without one."""
    return f"customer_{random_digits(4)}"


def new_fbtrace_id() -> str:
    """The `fbtrace_id` Meta puts in every error envelope (support quotes it)."""
    return "A" + "".join(secrets.choice(FBTRACE_ALPHABET) for _ in range(FBTRACE_LENGTH - 1))


def new_mid(*, account_id: str) -> str:
    """A message id in Meta's encoding: `aWdfZAG1faXRlbToxOklHTWVzc2FnZA…ZDZD`, ~168 chars."""
    # Real mids are base64 of `ig_dm_item:1:IGMessageID:<IG_ID>:<thread>:<item>` with `Z`
    # escaped as `ZA` and the `=` padding as `ZD`. The item number's length is chosen so the
    # padding is always `==` (`ZDZD`), as in every example. The service must treat it as opaque.
    head = f"ig_dm_item:1:IGMessageID:{account_id}:{THREAD_ID_PREFIX}{random_digits(15)}:"
    item_digits = 38 + (1 - len(head) - 38) % 3
    raw = base64.b64encode((head + random_digits(item_digits)).encode()).decode()
    return raw.replace("Z", "ZA").replace("=", "ZD")


def new_media_id() -> str:
    """A 17-digit Instagram media id (post, reel, story), also the CDN's `asset_id`."""
    return "18" + random_digits(15)


def new_cdn_url() -> str:
    """A signed-looking lookaside CDN URL, where Meta re-hosts every media attachment."""
    return CDN_URL.format(asset_id=new_media_id(), signature=secrets.token_urlsafe(75))
