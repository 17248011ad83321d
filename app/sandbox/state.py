"""The sandbox's in-memory world: customers, the calls the service made, injected faults.

Every Graph request runs in its own worker thread, so all access goes through one lock and
readers get copies, never the live objects.
"""

import dataclasses
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import requests

from app.sandbox.business import BusinessState
from app.sandbox.config import EchoMode, SandboxConfig
from app.sandbox.ids import new_app_scoped_id
from app.sandbox.threads import Threads
from app.sandbox.webhooks import DeliveryResult, deliver

logger = logging.getLogger(__name__)

CallKind = Literal[
    "me", "profile", "send", "refresh", "subscription", "conversations", "message", "other"
]
FaultKind = Literal[
    "me", "profile", "send", "refresh", "subscription", "conversations", "message", "any"
]
# Meta's Conversations API limit: calls per second per account (answered with code 4).
CONVERSATIONS_CALLS_PER_SECOND = 2


class UnknownCustomerError(LookupError):
    """No customer has this IGSID."""


class CustomerExistsError(ValueError):
    """A customer with this IGSID already exists."""


class AccountExistsError(ValueError):
    """A business account with this IG_ID already exists."""


@dataclass
class SandboxAccount:
    """A business account the sandbox plays: its IG_ID, profile, tokens and subscription."""

    id: str
    username: str
    name: str
    app_scoped_id: str  # what its /me answers as `id` (not the IG_ID)
    business: BusinessState

    def describe(self) -> dict[str, Any]:
        """What the control API shows (its first token included: tests configure with it)."""
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "app_scoped_id": self.app_scoped_id,
            "access_token": self.business.tokens()[0].value,
            "subscribed_fields": self.business.subscribed_fields(),
        }


@dataclass
class Customer:
    """An Instagram user who writes to a business; the profile fields mirror Meta's. An IGSID
    belongs to one business account (`account_id`): other accounts' tokens cannot see it."""

    id: str
    username: str
    name: str | None = None
    profile_pic: str | None = None
    follower_count: int = 0
    is_user_follow_business: bool = False
    is_business_follow_user: bool = False
    is_verified_user: bool = False
    # Meta serves the profile only once the person has messaged the business.
    consented: bool = False
    # The messaging window (app/services/window.py) counts from this message.
    last_inbound_ms: int | None = None
    # The business account the customer writes to ("": the configured one).
    account_id: str = ""


@dataclass
class Fault:
    """A misbehaviour to play on the next `times` Graph calls of `kind`."""

    kind: FaultKind
    times: int = 1
    status_code: int = 400
    error: dict[str, Any] | None = None
    delay_seconds: float = 0
    # An answer of its own instead of the endpoint's (wins over `error`), e.g. a 200 that
    # lacks a field Meta always sends.
    body: Any = None
    # Only calls with this business account's token (None: any account's).
    account_id: str | None = None


@dataclass
class GraphCall:
    """One request the service made to the Graph routes, as tests count them."""

    method: str
    path: str
    query: dict[str, str]
    kind: CallKind
    at_ms: int
    # The business account whose token the call carried (None: no token the sandbox knows).
    account_id: str | None = None
    # None until answered, and for good when the client gave up first (a timeout).
    status_code: int | None = None


@dataclass
class SendCall:
    """One Send API request and the answer the sandbox gave."""

    body: Any
    status_code: int
    response: Any
    at_ms: int


class SandboxState:
    """Thread-safe store behind both routers; runtime knobs start from the config."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        # One pooled HTTP session for every webhook delivery.
        self.session = requests.Session()
        self._lock = threading.Lock()
        self._customers: dict[str, Customer] = {}
        self._calls: list[GraphCall] = []
        self._sent: list[SendCall] = []
        self._faults: list[Fault] = []
        # How many times each message has been edited, to number the next edit.
        self._edit_counts: dict[str, int] = {}
        # Bumped by every reset; `released` also when faults are cleared: calls a fault is
        # holding (delay_seconds) are let go.
        self.generation = 0
        self.released = 0
        # The business accounts: the configured one first, then those tests add.
        self.primary = SandboxAccount(
            id=config.account_id,
            username=config.account_username,
            name=config.account_name,
            app_scoped_id=config.app_scoped_id,
            business=BusinessState(config.access_token.get_secret_value()),
        )
        self._accounts: dict[str, SandboxAccount] = {self.primary.id: self.primary}
        # Conversations' messages and their media files (the Conversations API, the CDN).
        self.threads = Threads()
        self._conversation_calls: deque[float] = deque()
        self._restore_settings()

    @property
    def business(self) -> BusinessState:
        """The configured account's tokens and webhook subscription."""
        return self.primary.business

    def add_account(self, *, account_id: str, username: str, name: str) -> SandboxAccount:
        """Another business account with a token of its own (issued now)."""
        account = SandboxAccount(
            id=account_id,
            username=username,
            name=name,
            app_scoped_id=new_app_scoped_id(),
            business=BusinessState(f"IGAAsandbox{secrets.token_hex(24)}"),
        )
        with self._lock:
            if account_id in self._accounts:
                raise AccountExistsError(account_id)
            self._accounts[account_id] = account
        return account

    def accounts(self) -> list[SandboxAccount]:
        with self._lock:
            return list(self._accounts.values())

    def account(self, account_id: str) -> SandboxAccount | None:
        with self._lock:
            return self._accounts.get(account_id or self.primary.id)

    def account_of_token(self, token: str) -> SandboxAccount | None:
        """The account that issued this token (valid or not); None for an unknown token."""
        for account in self.accounts():
            if account.business.check_token(token) != "unknown":
                return account
        return None

    def _restore_settings(self) -> None:
        self.echo_mode: EchoMode = self.config.echo_mode
        self.latency_ms: int = self.config.latency_ms
        self.webhook_url: str = str(self.config.webhook_url)
        self.conversations_rate_limit: bool = self.config.conversations_rate_limit

    def settings(self) -> dict[str, Any]:
        """The knobs a running sandbox lets tests change."""
        with self._lock:
            return {
                "echo_mode": self.echo_mode,
                "latency_ms": self.latency_ms,
                "webhook_url": self.webhook_url,
                "conversations_rate_limit": self.conversations_rate_limit,
            }

    def update_settings(
        self,
        *,
        echo_mode: EchoMode | None = None,
        latency_ms: int | None = None,
        webhook_url: str | None = None,
        conversations_rate_limit: bool | None = None,
    ) -> dict[str, Any]:
        """Change the given knobs, keep the others; return all of them."""
        with self._lock:
            if conversations_rate_limit is not None:
                self.conversations_rate_limit = conversations_rate_limit
            if echo_mode is not None:
                self.echo_mode = echo_mode
            if latency_ms is not None:
                self.latency_ms = latency_ms
            if webhook_url is not None:
                self.webhook_url = webhook_url
        return self.settings()

    def reset(self) -> None:
        """Forget customers, calls, sends, edits and faults; knobs go back to the config values;
        calls held by a fault's delay are answered now."""
        with self._lock:
            self._customers.clear()
            self._calls.clear()
            self._sent.clear()
            self._faults.clear()
            self._edit_counts.clear()
            self._accounts = {self.primary.id: self.primary}
            self.primary.business.reset()
            self.threads.reset()
            self._conversation_calls.clear()
            self._restore_settings()
            self.generation += 1
            self.released += 1

    def deliver_webhook(self, *, payload: Any, signed: bool = True) -> DeliveryResult:
        """POST a delivery to the service, signed with the app secret like Meta does."""
        secret = self.config.app_secret.get_secret_value() if signed else None
        result = deliver(url=self.webhook_url, payload=payload, secret=secret, session=self.session)
        if result.error or (result.status_code or 0) >= 300:
            # Echoes are delivered in the background: this line is the only trace of a failure.
            logger.warning("webhook to %s failed: %s", self.webhook_url, result.error or result)
        return result

    def close(self) -> None:
        """Release the webhook HTTP connections."""
        self.session.close()

    # Customers

    def add_customer(self, customer: Customer) -> Customer:
        """Store a new customer; its IGSID must be free."""
        with self._lock:
            if customer.id in self._customers:
                raise CustomerExistsError(f"customer {customer.id} already exists")
            stored = dataclasses.replace(
                customer, account_id=customer.account_id or self.primary.id
            )
            self._customers[customer.id] = stored
            return dataclasses.replace(stored)

    def _customer(self, customer_id: str) -> Customer:
        # The live object: callers hold the lock.
        customer = self._customers.get(customer_id)
        if customer is None:
            raise UnknownCustomerError(f"customer {customer_id} does not exist")
        return customer

    def require_customer(self, customer_id: str) -> Customer:
        """The customer with this IGSID; UnknownCustomerError when there is none."""
        with self._lock:
            return dataclasses.replace(self._customer(customer_id))

    def get_customer(self, customer_id: str) -> Customer | None:
        """The customer with this IGSID, or None."""
        with self._lock:
            customer = self._customers.get(customer_id)
            return dataclasses.replace(customer) if customer else None

    def customers(self) -> list[Customer]:
        """All customers, oldest first."""
        with self._lock:
            return [dataclasses.replace(customer) for customer in self._customers.values()]

    def record_inbound(self, *, customer_id: str, timestamp_ms: int) -> Customer:
        """Note that the customer wrote at `timestamp_ms`: consent given, window (re)opened."""
        with self._lock:
            customer = self._customer(customer_id)
            customer.consented = True
            # Webhooks may describe old messages; only the newest one opens the window.
            if customer.last_inbound_ms is None or timestamp_ms > customer.last_inbound_ms:
                customer.last_inbound_ms = timestamp_ms
            return dataclasses.replace(customer)

    def conversations_call_allowed(self) -> bool:
        """Whether a Conversations API call fits in Meta's 2 calls per second per account (a
        sliding second); always when the limit is switched off. An allowed call counts."""
        now = time.monotonic()
        with self._lock:
            calls = self._conversation_calls
            while calls and now - calls[0] >= 1.0:
                calls.popleft()
            if self.conversations_rate_limit and len(calls) >= CONVERSATIONS_CALLS_PER_SECOND:
                return False
            calls.append(now)
            return True

    # Logs

    def record_call(self, call: GraphCall) -> None:
        """Append to the Graph calls log."""
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[GraphCall]:
        """Every Graph call so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def record_send(self, send: SendCall) -> None:
        """Append to the Send API log."""
        with self._lock:
            self._sent.append(send)

    def sent(self) -> list[SendCall]:
        """Every Send API call so far, in arrival order."""
        with self._lock:
            return list(self._sent)

    def last_sent_mid(self, customer_id: str) -> str | None:
        """The mid of the newest message the Send API delivered to this customer, if any."""
        with self._lock:
            for send in reversed(self._sent):
                answer = send.response
                # Failed sends and sender actions answer without a `message_id`.
                if isinstance(answer, dict) and answer.get("recipient_id") == customer_id:
                    mid = answer.get("message_id")
                    if mid:
                        return str(mid)
            return None

    def count_edit(self, *, mid: str, num_edit: int | None = None) -> int:
        """Number this edit of `mid`: one more than the last, or `num_edit` when given."""
        with self._lock:
            number = num_edit if num_edit is not None else self._edit_counts.get(mid, 0) + 1
            self._edit_counts[mid] = number
            return number

    # Faults

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; faults apply in the order they were added."""
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def take_fault(self, kind: CallKind, *, account_id: str | None = None) -> Fault | None:
        """Consume one use of the first fault matching a call of `kind` (made with the token
        of `account_id`)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in (kind, "any") and fault.account_id in (None, account_id):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return dataclasses.replace(fault)
            return None

    def faults(self) -> list[Fault]:
        """Faults still waiting to fire."""
        with self._lock:
            return [dataclasses.replace(fault) for fault in self._faults]

    def clear_faults(self) -> None:
        """Drop every pending fault; calls held by a fault's delay are answered now."""
        with self._lock:
            self._faults.clear()
            self.released += 1
