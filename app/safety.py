"""What the service refuses to serve with: an open API nobody asked for, example values,
short secrets, a Graph API reached over plain HTTP.

`create_app` checks these before anything starts; `fab doctor` reports them too. The checks
look at the configuration only (no I/O), so they also run where nothing is reachable yet.
"""

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import SecretStr

from app.config import Settings

MIN_SECRET_LENGTH = 32
# `.env.example` writes every value to fill in as `<something>`.
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")
# The secrets someone could guess if they were short: checked for length when set.
_SECRETS = {
    "API_KEY": "api_key",
    "INSTAGRAM_APP_SECRET": "instagram_app_secret",
    "INSTAGRAM_WEBHOOK_TOKEN": "instagram_webhook_token",
}
GENERATE_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class UnsafeConfigurationError(RuntimeError):
    """The configuration would serve something unsafe; the message says what, in one line."""


def _plain(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


def is_loopback_url(url: str) -> bool:
    """Whether `url` points at this machine (localhost or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusals(settings: Settings) -> list[str]:
    """Every reason the service must not serve with `settings` (empty: safe to start)."""
    reasons = []
    for name, field in Settings.model_fields.items():
        value = _plain(getattr(settings, name))
        if value is not None and _PLACEHOLDER.match(value.strip()):
            variable = field.alias or name.upper()
            reasons.append(f"{variable} is still the example value {value.strip()}: set a real one")
    if settings.api_key is None and not settings.allow_open_api:
        reasons.append(
            "API_KEY is not set, so every conversation and sending would be open to anyone who "
            f"can reach the service: set API_KEY (generate one: {GENERATE_HINT}), or set "
            "ALLOW_OPEN_API=true to serve an open API on purpose"
        )
    for variable, name in _SECRETS.items():
        value = _plain(getattr(settings, name))
        placeholder = value is not None and _PLACEHOLDER.match(value.strip())
        if value is not None and not placeholder and len(value) < MIN_SECRET_LENGTH:
            reasons.append(
                f"{variable} is shorter than {MIN_SECRET_LENGTH} characters: use a long "
                f"random value ({GENERATE_HINT})"
            )
    for variable, url in (
        ("INSTAGRAM_GRAPH_URL", settings.instagram_graph_url),
        ("INSTAGRAM_SEND_MESSAGE_URL", settings.instagram_send_message_url),
    ):
        if url and urlsplit(url).scheme != "https" and not is_loopback_url(url):
            reasons.append(
                f"{variable} must be an https:// URL (plain http is accepted only for a "
                "loopback address, such as the sandbox)"
            )
    return reasons


def check_safe_to_serve(settings: Settings) -> None:
    """Raise UnsafeConfigurationError naming the first reason, when there is one."""
    reasons = refusals(settings)
    if reasons:
        raise UnsafeConfigurationError("; ".join(reasons))
