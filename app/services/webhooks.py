"""Webhook intake: the subscription handshake, and durable, idempotent delivery storage."""

import json
import logging
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import BadRequestError, ForbiddenError
from app.models import utcnow
from app.repositories import deliveries
from app.security import secrets_equal, signature_matches
from app.services.events import EventShapeError, WebhookEvent, apply_event, extract_events

logger = logging.getLogger(__name__)

# Errors that mean the database itself failed: the whole delivery must fail (503, Meta retries)
# rather than be recorded as one bad event.
DATABASE_FAILURES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
MAX_ERROR_TEXT = 500


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (PostgreSQL could not store them); nesting is bounded."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequestError("The body is not valid JSON.", code="malformed_json") from None


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


class WebhookService:
    """Verify and store what Meta delivers."""

    def __init__(self, *, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings

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
        payload = parse_json(body)
        received_at = utcnow()
        events = list(extract_events(payload))
        failures = self._apply_all(events)
        deliveries.add(
            self.session,
            body=body,
            received_at=received_at,
            event_count=len(events),
            status="failed" if failures else "applied",
            error="\n".join(failures) or None,
        )
        self.session.commit()
        if failures:
            logger.error(
                "webhook delivery stored with %d failed event(s): %s", len(failures), failures[0]
            )

    def _check_signature(self, *, body: bytes, signature: str | None) -> None:
        secret = self.settings.instagram_app_secret
        if secret is None:
            logger.error(
                "webhook delivery refused: INSTAGRAM_APP_SECRET is not set, so its "
                "X-Hub-Signature-256 cannot be verified"
            )
            raise ForbiddenError("Invalid webhook signature.", code="invalid_signature")
        if not signature_matches(secret=secret.get_secret_value(), body=body, header=signature):
            logger.warning(
                "webhook delivery refused: %s X-Hub-Signature-256",
                "missing" if not signature else "wrong",
            )
            raise ForbiddenError("Invalid webhook signature.", code="invalid_signature")

    def _apply_all(self, events: list[WebhookEvent | EventShapeError]) -> list[str]:
        """Apply every event; return one line per event that could not be applied.

        The common case (everything applies) costs one savepoint. Only when something fails
        is each event retried in a savepoint of its own, so one bad event cannot take the
        others down with it.
        """
        shape_errors = [str(event) for event in events if isinstance(event, EventShapeError)]
        valid = [event for event in events if isinstance(event, WebhookEvent)]
        try:
            with self.session.begin_nested():
                for event in valid:
                    apply_event(self.session, event)
            return shape_errors
        except DATABASE_FAILURES:
            raise
        except Exception:
            logger.debug("delivery did not apply in one piece; isolating events", exc_info=True)
        failures = shape_errors
        for event in valid:
            try:
                with self.session.begin_nested():
                    apply_event(self.session, event)
            except DATABASE_FAILURES:
                raise
            except Exception as exc:
                failures.append(f"{event.path}: {_describe(exc)}")
        return failures
