"""Webhook endpoints' signing secrets sealed at rest: the stored `secret` and `previous_secret`
in clear (`whsec_…`) are sealed with the token cipher.

Revision ID: 0014
Revises: 0013
Created: 2026-11-30 16:10

The cipher is the one the environment of the migration configures (TOKEN_ENCRYPTION_KEY,
else a key derived from INSTAGRAM_APP_SECRET or INSTAGRAM_USER_TOKEN: run it with the
service's settings). Values already sealed are left as they are. Downgrade opens them again;
it stops, changing nothing, if one cannot be opened with the keys it has.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from app.config import Settings
from app.services.tokens.cipher import InvalidToken, cipher_for

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_CLEAR = "whsec_"
ENDPOINTS = sa.table(
    "webhook_endpoints", sa.column("id"), sa.column("secret"), sa.column("previous_secret")
)


def _rewrite(change: Callable[[str], str]) -> None:
    """Apply `change` to every stored secret (NULL stays NULL), all computed before any is
    written."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(ENDPOINTS.c.id, ENDPOINTS.c.secret, ENDPOINTS.c.previous_secret)
    ).all()
    changed = [
        (endpoint_id, change(secret), previous and change(previous))
        for endpoint_id, secret, previous in rows
    ]
    for endpoint_id, secret, previous in changed:
        connection.execute(
            ENDPOINTS.update()
            .where(ENDPOINTS.c.id == endpoint_id)
            .values(secret=secret, previous_secret=previous)
        )


def upgrade() -> None:
    cipher = cipher_for(Settings())
    _rewrite(lambda value: cipher.seal(value) if value.startswith(IN_CLEAR) else value)


def downgrade() -> None:
    cipher = cipher_for(Settings())

    def opened(value: str) -> str:
        if value.startswith(IN_CLEAR):
            return value
        try:
            return cipher.open(value)
        except InvalidToken:
            raise RuntimeError(
                "a webhook endpoint's secret cannot be opened with the configured keys: run "
                "the downgrade with the service's TOKEN_ENCRYPTION_KEY / INSTAGRAM_APP_SECRET"
            ) from None

    _rewrite(opened)
