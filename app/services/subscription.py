"""The account's webhook subscription (`/me/subscribed_apps`): Meta delivers webhooks only for
accounts subscribed to the fields the service handles (`fab subscribe`, checked by `fab doctor`)."""

from dataclasses import dataclass

from app.clients.instagram import InstagramClient

# Every field whose webhook events app/services/intake/ applies.
WEBHOOK_FIELDS = (
    "messages",
    "message_reactions",
    "messaging_seen",
    "messaging_postbacks",
    "messaging_referral",
    "message_edit",
)


@dataclass(frozen=True)
class Subscription:
    fields: list[str]  # what Meta reports the account is subscribed to

    @property
    def missing(self) -> list[str]:
        return [field for field in WEBHOOK_FIELDS if field not in self.fields]


def read_subscription(instagram: InstagramClient) -> Subscription:
    """The fields the account is subscribed to now."""
    return Subscription(fields=instagram.subscribed_webhook_fields())


def subscribe(instagram: InstagramClient) -> Subscription:
    """Subscribe the account to every field the service handles, then read them back."""
    instagram.subscribe_webhooks(WEBHOOK_FIELDS)
    return read_subscription(instagram)
