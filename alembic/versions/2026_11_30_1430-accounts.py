"""Accounts are rows: `accounts` (one per business IG_ID, with its own sealed token) and
`pending_entries` (deliveries holding entries of an account not served yet); the single
`instagram_tokens` row is carried over to the account it belongs to.

Revision ID: 0012
Revises: 0011
Created: 2026-11-30 14:30

The token row is the one of the configured INSTAGRAM_USER_TOKEN (keyed by its sha256); its
account is INSTAGRAM_ACCOUNT_ID (or INSTAGRAM_ACCOUNT_SCOPED_ID) when the environment of the
migration sets it, else the one account the stored conversations belong to. The sealed value
is copied as it is: the key it was sealed with (derived from the configured token) is among
those that open tokens (app/services/tokens/cipher.py). When no account can be told, nothing
is carried: the service adopts the configured token at start, as on a new database.
Downgrade carries the environment account's token back the same way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.config import Settings

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_COLUMNS = (
    "access_token",
    "issued_at",
    "expires_at",
    "expiry_assumed",
    "refreshed_at",
    "refresh_claimed_until",
    "refresh_error",
    "invalid_since",
    "invalid_reason",
    "created_at",
    "updated_at",
)


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if now else None,
        nullable=nullable,
    )


def _token_columns(*, nullable_token: bool) -> list[sa.Column]:
    return [
        sa.Column("access_token", sa.Text(), nullable=nullable_token),
        _timestamp("issued_at", nullable=nullable_token),
        _timestamp("expires_at", nullable=nullable_token),
        sa.Column("expiry_assumed", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _timestamp("refreshed_at"),
        _timestamp("refresh_claimed_until"),
        sa.Column("refresh_error", sa.Text(), nullable=True),
        _timestamp("invalid_since"),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
    ]


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _account_id(connection: sa.Connection) -> str | None:
    """The account the single token belongs to, if it can be told."""
    configured = Settings().account_id
    if configured:
        return configured
    known = connection.execute(
        sa.text("SELECT DISTINCT account_id FROM conversations LIMIT 2")
    ).scalars()
    ids = list(known)
    return str(ids[0]) if len(ids) == 1 else None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        *_token_columns(nullable_token=True),
        sa.Column("configured_token_sha256", sa.String(length=64), nullable=True),
        sa.Column("subscribed_fields", _json(), nullable=True),
        _timestamp("subscribed_at"),
        _timestamp("last_webhook_at"),
        _timestamp("removed_at"),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.CheckConstraint(
            "status IN ('active', 'needs_reauth', 'removed')", name=op.f("ck_accounts_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "pending_entries",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        _timestamp("created_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_pending_entries_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "delivery_id", name=op.f("pk_pending_entries")),
    )
    op.create_index(
        op.f("ix_pending_entries_delivery_id"), "pending_entries", ["delivery_id"], unique=False
    )
    _carry_token_to_account()
    op.drop_table("instagram_tokens")


def _tables() -> tuple[sa.TableClause, sa.TableClause]:
    """The two tables as this migration knows them (not as the models may say later)."""
    token_columns = [sa.column(name) for name in TOKEN_COLUMNS]
    tokens = sa.table("instagram_tokens", sa.column("source_fingerprint"), *token_columns)
    accounts = sa.table(
        "accounts",
        sa.column("id"),
        sa.column("status"),
        sa.column("configured_token_sha256"),
        *[sa.column(name) for name in TOKEN_COLUMNS],
    )
    return tokens, accounts


def _carry_token_to_account() -> None:
    connection = op.get_bind()
    tokens, accounts = _tables()
    row = (
        connection.execute(sa.select(tokens).order_by(tokens.c.updated_at.desc()).limit(1))
        .mappings()
        .first()
    )
    account_id = _account_id(connection) if row is not None else None
    if row is None or account_id is None:
        return
    connection.execute(
        sa.insert(accounts).values(
            id=account_id,
            status="needs_reauth" if row["invalid_since"] is not None else "active",
            configured_token_sha256=row["source_fingerprint"],
            **{name: row[name] for name in TOKEN_COLUMNS},
        )
    )


def downgrade() -> None:
    op.create_table(
        "instagram_tokens",
        sa.Column("source_fingerprint", sa.String(length=64), nullable=False),
        *_token_columns(nullable_token=False),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("source_fingerprint", name=op.f("pk_instagram_tokens")),
    )
    tokens, accounts = _tables()
    carried = sa.select(
        accounts.c.configured_token_sha256, *[accounts.c[name] for name in TOKEN_COLUMNS]
    ).where(
        accounts.c.configured_token_sha256.is_not(None),
        accounts.c.access_token.is_not(None),
        accounts.c.expires_at.is_not(None),
        accounts.c.issued_at.is_not(None),
    )
    op.get_bind().execute(
        sa.insert(tokens).from_select(["source_fingerprint", *TOKEN_COLUMNS], carried)
    )
    op.drop_index(op.f("ix_pending_entries_delivery_id"), table_name="pending_entries")
    op.drop_table("pending_entries")
    op.drop_table("accounts")
