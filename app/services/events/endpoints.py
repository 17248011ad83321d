"""Consumers' webhook endpoints: create (with a signing secret), list, change, delete,
rotate the secret, send a test ping, replay, and list delivery attempts."""

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import InvalidInputError, NotFoundError
from app.models import WebhookEndpoint, utcnow
from app.repositories import endpoints, event_deliveries, events
from app.schemas.v1.endpoints import (
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    attempt_json,
    endpoint_json,
)
from app.services.events.feed import check_not_expired, check_types
from app.services.events.outbox import new_event_id, plain
from app.services.events.signing import new_secret
from app.services.events.urls import check_url
from app.services.tokens.cipher import cipher_for

# After a rotation the previous secret signs too, so consumers can switch without a gap.
ROTATION_OVERLAP = timedelta(hours=24)
FAN_OUT_BATCH = 1000
ATTEMPTS_SHOWN = 100


class EndpointService:
    """The API's use cases on webhook endpoints; each ends in a commit."""

    def __init__(
        self, *, session: Session, settings: Settings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.session = session
        self.settings = settings
        self.clock = clock
        self.cipher = cipher_for(settings)

    def create(self, body: WebhookEndpointCreate) -> dict[str, Any]:
        """A WebhookEndpointCreated: it receives the events written from now on."""
        now = self.clock()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=f"we_{secrets.token_urlsafe(12)}",
            url=self._url(body.url),
            description=body.description,
            event_types=check_types(body.event_types),
            account_ids=list(dict.fromkeys(body.account_ids)) if body.account_ids else None,
            secret=self.cipher.seal(secret),
            enabled=True,
            dispatched_seq=endpoints.newest_seq_for_new_endpoint(self.session),
            created_at=now,
            updated_at=now,
        )
        endpoints.add(self.session, endpoint)
        self.session.commit()
        return {**endpoint_json(endpoint), "secret": secret}

    def list(self) -> list[dict[str, Any]]:
        return [endpoint_json(endpoint) for endpoint in endpoints.all_(self.session)]

    def get(self, endpoint_id: str) -> dict[str, Any]:
        return endpoint_json(self._endpoint(endpoint_id))

    def update(self, endpoint_id: str, body: WebhookEndpointUpdate) -> dict[str, Any]:
        """Change what is given; re-enabling starts from now (`replay` delivers the past)."""
        endpoint = self._endpoint(endpoint_id)
        given = body.model_fields_set
        now = self.clock()
        if "url" in given:
            if body.url is None:
                raise InvalidInputError("`url` cannot be null.", code="invalid_url")
            endpoint.url = self._url(body.url)
        if "event_types" in given:
            endpoint.event_types = check_types(body.event_types)
        if "account_ids" in given:
            endpoint.account_ids = list(dict.fromkeys(body.account_ids or [])) or None
        if "description" in given:
            endpoint.description = body.description
        if body.enabled is True and not endpoint.enabled:
            endpoint.enabled = True
            endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
            endpoint.dispatched_seq = endpoints.newest_seq_for_new_endpoint(self.session)
        elif body.enabled is False and endpoint.enabled:
            endpoint.enabled = False
            endpoint.disabled_reason = "disabled through the API"
            endpoint.disabled_at = now
        endpoint.updated_at = now
        self.session.commit()
        return endpoint_json(endpoint)

    def delete(self, endpoint_id: str) -> None:
        """The endpoint and its deliveries."""
        endpoints.delete(self.session, self._endpoint(endpoint_id))
        self.session.commit()

    def rotate_secret(self, endpoint_id: str) -> dict[str, Any]:
        """A new secret; the current one keeps signing (beside it) for 24 hours. Both are
        stored sealed; the new one is answered in clear, here only."""
        endpoint = self._endpoint(endpoint_id)
        now = self.clock()
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = now + ROTATION_OVERLAP
        endpoint.secret = self.cipher.seal(secret)
        endpoint.updated_at = now
        self.session.commit()
        return {"secret": secret}

    def ping(self, endpoint_id: str) -> dict[str, Any]:
        """A `ping` event delivered to this endpoint only."""
        endpoint = self._endpoint(endpoint_id)
        now = self.clock()
        event_id = new_event_id()
        row = {
            "id": event_id,
            "type": event_deliveries.PING,
            "account_id": None,
            "conversation": None,
            "payload": plain({"endpoint_id": endpoint.id, "sent_at": now}),
            "created_at": now,
        }
        events.add_many(self.session, [row])
        seq = events.seq_of(self.session, event_id)
        event_deliveries.add_one(self.session, endpoint_id=endpoint.id, event_seq=seq, now=now)
        self.session.commit()
        return {"event_id": event_id}

    def replay(self, endpoint_id: str, *, since_seq: int) -> dict[str, Any]:
        """Deliver the endpoint's events from `since_seq` again (those it was due: its filters
        as they are now); 410 events_expired when some were deleted already."""
        endpoint = self._endpoint(endpoint_id)
        check_not_expired(self.session, since_seq - 1)
        now = self.clock()
        event_deliveries.restart(
            self.session, endpoint_id=endpoint.id, since_seq=since_seq, now=now
        )
        # Events its filters left out then, or it was not there for: delivered now too.
        after = since_seq - 1
        while after < endpoint.dispatched_seq:
            after = event_deliveries.fan_out(
                self.session,
                endpoint,
                after=after,
                up_to=endpoint.dispatched_seq,
                now=now,
                limit=FAN_OUT_BATCH,
            )
        pending = event_deliveries.pending_from(
            self.session, endpoint_id=endpoint.id, since_seq=since_seq
        )
        self.session.commit()
        return {"deliveries": pending}

    def attempts(self, endpoint_id: str) -> dict[str, Any]:
        """A DeliveryAttemptPage: the endpoint's latest attempts, newest first."""
        endpoint = self._endpoint(endpoint_id)
        rows = event_deliveries.attempts_of_endpoint(
            self.session, endpoint_id=endpoint.id, limit=ATTEMPTS_SHOWN
        )
        return {"data": [attempt_json(row._mapping) for row in rows]}

    def _endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        endpoint = endpoints.get(self.session, endpoint_id)
        if endpoint is None:
            raise NotFoundError(f"No webhook endpoint {endpoint_id}.", code="endpoint_not_found")
        return endpoint

    def _url(self, url: str) -> str:
        return check_url(url, allow_private=self.settings.events_allow_private_urls)
