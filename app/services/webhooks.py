"""Webhook intake: the subscription handshake, and durable, idempotent delivery storage."""

import hashlib
import json
import logging
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from app import metrics
from app.config import Settings
from app.errors import BadRequestError, ForbiddenError
from app.models import utcnow
from app.repositories import accounts, deliveries
from app.security import secrets_equal, signature_matches
from app.services.intake import DeliveryOutcome, apply_delivery
from app.services.intake.accounts import IntakeAccounts

logger = logging.getLogger(__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (PostgreSQL could not store them); nesting is bounded."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequestError("The body is not valid JSON.", code="malformed_json") from None


class WebhookService:
    """Verify and store what Meta delivers."""

    def __init__(
        self, *, session: Session, settings: Settings, accounts_seen: IntakeAccounts
    ) -> None:
        self.session = session
        self.settings = settings
        self.accounts_seen = accounts_seen

    def verify_subscription(self, *, mode: str, verify_token: str, challenge: str) -> str:
        """Meta's handshake: echo the challenge when the verify token matches."""
        expected = self.settings.instagram_webhook_token
        if expected is None:
            logger.error(
                "webhook verification refused: INSTAGRAM_WEBHOOK_TOKEN is not set, so no "
                "verify token can match"
            )
            raise ForbiddenError("Webhook verification failed.", code="verification_failed")
        if mode != "subscribe" or not secrets_equal(verify_token, expected.get_secret_value()):
            logger.warning("webhook verification refused: wrong hub.mode or hub.verify_token")
            raise ForbiddenError("Webhook verification failed.", code="verification_failed")
        return challenge

    def receive(self, *, body: bytes, signature: str | None) -> None:
        """Check the signature, then store the raw delivery and apply its events atomically."""
        self._check_signature(body=body, signature=signature)
        try:
            payload = parse_json(body)
        except BadRequestError:
            metrics.WEBHOOK_DELIVERIES.labels(outcome="malformed_json").inc()
            raise
        received_at = utcnow()
        outcome = apply_delivery(
            self.session,
            payload,
            archive_media=self.settings.media_archive != "off",
            served_among=self.accounts_seen.served_among,
        )
        delivery_id = deliveries.add(
            self.session,
            body=body,
            body_sha256=hashlib.sha256(body).hexdigest(),
            received_at=received_at,
            event_count=outcome.event_count,
            status=outcome.status,
            error=outcome.error,
        )
        if delivery_id is None:
            # Meta sent this very delivery again (its 200 was lost): it is stored and applied
            # already, so what this one wrote (the same thing, again) is undone.
            self.session.rollback()
            metrics.WEBHOOK_DELIVERIES.labels(outcome="duplicate").inc()
            logger.info("webhook delivery received again byte for byte: stored once")
            return
        accounts.add_pending(self.session, delivery_id=delivery_id, account_ids=outcome.pending)
        self.accounts_seen.touch_webhook_clock(
            self.session, account_ids=outcome.served, now=received_at
        )
        self.session.commit()
        if outcome.pending:
            logger.info(
                "webhook delivery %s holds entries of account(s) not served, kept until added: %s",
                delivery_id,
                ", ".join(sorted(outcome.pending)),
            )
        _count(outcome, received_at=received_at)
        if outcome.failures:
            logger.error(
                "webhook delivery stored with %d failed event(s), kept for `fab replay`: %s",
                len(outcome.failures),
                outcome.failures[0],
            )

    def _check_signature(self, *, body: bytes, signature: str | None) -> None:
        secret = self.settings.instagram_app_secret
        if secret is None:
            logger.error(
                "webhook delivery refused: INSTAGRAM_APP_SECRET is not set, so its "
                "X-Hub-Signature-256 cannot be verified"
            )
            _refused(reason="no_app_secret")
        if not signature_matches(secret=secret.get_secret_value(), body=body, header=signature):
            reason = "missing" if not signature else "wrong"
            logger.warning("webhook delivery refused: %s X-Hub-Signature-256", reason)
            _refused(reason=reason)


def _refused(*, reason: str) -> NoReturn:
    metrics.WEBHOOK_SIGNATURE_FAILURES.labels(reason=reason).inc()
    metrics.WEBHOOK_DELIVERIES.labels(outcome="invalid_signature").inc()
    raise ForbiddenError("Invalid webhook signature.", code="invalid_signature")


def _count(outcome: DeliveryOutcome, *, received_at: datetime) -> None:
    """Metrics of a stored delivery: its outcome, each event's, and how late each came."""
    metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome.status).inc()
    for result in outcome.results:
        metrics.WEBHOOK_EVENTS.labels(
            account=result.account, type=result.kind, outcome=result.outcome
        ).inc()
        if result.timestamp_ms is not None and result.outcome not in ("failed", "pending"):
            lag = received_at.timestamp() - result.timestamp_ms / 1000
            metrics.WEBHOOK_LAG.observe(max(lag, 0))
