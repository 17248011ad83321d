"""The per-delivery batch: what the webhook events of one delivery write, merged so that each
table takes one statement."""

from collections.abc import Collection, Hashable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final, Generic, Literal, TypeVar

from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import conversations, media, messages, reactions, users
from app.repositories import sync as sync_rows
from app.repositories.rows import (
    ConversationClocks,
    EditRow,
    MessageRow,
    ReactionRow,
    UnsendRow,
)
from app.repositories.rules import (
    CONVERSATION_CLOCKS,
    FIRST_MESSAGE_STANDS,
    HIGHER_EDIT,
    LATER_UNSEND,
    LATEST_REACTION,
    FirstStands,
    Latest,
)
from app.services.events import intake as intake_events
from app.services.media import attachments

ConversationKey = tuple[str, str]  # (account_id, customer_id)
# A message named by an event but not stored yet may still be on its way (Meta does not
# deliver in order): its conversation is checked against Meta's list after this long.
GAP_CHECK_DELAY = timedelta(seconds=60)
RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Ticket:
    """The row a webhook event offered to the batch: `kind` (messages, unsends, edits,
    reactions) and its key there."""

    kind: str
    key: Hashable


# What a webhook event leaves in the batch: a ticket; None when it only moves conversation
# clocks (always applied: they only move forward); IGNORED for kinds kept raw only.
IGNORED: Final = "ignored"
Collected = Ticket | None | Literal["ignored"]


@dataclass(slots=True)
class _Merged(Generic[RowT]):
    row: RowT
    owner: int  # the webhook event (its number in the batch) whose values stand
    conversation: ConversationKey | None


class _Merging(Generic[RowT]):
    """One kind of row, merged by key with the rule its upsert applies in the database."""

    def __init__(self, kind: str, rule: Latest | FirstStands) -> None:
        self.kind = kind
        self.rule = rule
        self.merged: dict[Hashable, _Merged[RowT]] = {}

    def offer(
        self, key: Hashable, row: RowT, *, owner: int, conversation: ConversationKey | None
    ) -> Ticket:
        current = self.merged.get(key)
        if current is None:
            self.merged[key] = _Merged(row, owner, conversation)
        elif self.rule.wins(row, current.row):
            merged = self.rule.merge(current.row, row)
            self.merged[key] = _Merged(merged, owner, current.conversation)
        return Ticket(self.kind, key)

    def rows(self, conversation_ids: dict[ConversationKey, int]) -> list[RowT]:
        """The merged rows, each with its conversation's id (stored by now)."""
        rows = []
        for entry in self.merged.values():
            row: Any = entry.row
            if entry.conversation is not None:
                row = replace(row, conversation_id=conversation_ids[entry.conversation])
            rows.append(row)
        return rows


class Batch:
    """What a set of webhook events writes, merged so that each table takes one statement.

    Events are collected in any order. Rows with the same key merge by the rule their
    table's upsert applies in the database (app/repositories/rules.py), so merging them first
    and writing once gives the state of writing them one by one. Each merged row remembers
    its owner, the event whose values stand: another event offering that row was a duplicate.
    """

    def __init__(self, *, archive_media: bool = False) -> None:
        # New attachments' media rows start `pending` (for the download worker) when true.
        self.archive_media = archive_media
        self.clocks: dict[ConversationKey, ConversationClocks] = {}
        # (Annotated, not subscripted: a subscripted generic costs a call per delivery.)
        self.messages: _Merging[MessageRow] = _Merging("messages", FIRST_MESSAGE_STANDS)
        self.unsends: _Merging[UnsendRow] = _Merging("unsends", LATER_UNSEND)
        self.edits: _Merging[EditRow] = _Merging("edits", HIGHER_EDIT)
        self.reactions: _Merging[ReactionRow] = _Merging("reactions", LATEST_REACTION)
        self._merging: dict[str, _Merging[Any]] = {
            merging.kind: merging
            for merging in (self.messages, self.unsends, self.edits, self.reactions)
        }
        self._collected: list[Collected] = []  # per webhook event, in order
        # Messages the events name without being them (reacted to, read, edited, replied to):
        # one the service does not have is a gap, checked against Meta's list later.
        self.references: dict[ConversationKey, set[str]] = {}
        # Whose conversation each reaction is in (a reaction may come before its message).
        self.reaction_conversations: dict[Hashable, ConversationKey] = {}

    def note(self, collected: Collected) -> None:
        """Record what the webhook event being collected left in the batch."""
        self._collected.append(collected)

    def conversation(self, clocks: ConversationClocks) -> ConversationKey:
        key = (clocks.account_id, clocks.customer_id)
        current = self.clocks.get(key)
        self.clocks[key] = clocks if current is None else CONVERSATION_CLOCKS.merge(current, clocks)
        return key

    def message(self, row: MessageRow, *, conversation: ConversationKey) -> Ticket:
        return self._offer(self.messages, row.mid, row, conversation=conversation)

    def unsend(self, row: UnsendRow, *, conversation: ConversationKey) -> Ticket:
        return self._offer(self.unsends, row.mid, row, conversation=conversation)

    def edit(self, row: EditRow, *, conversation: ConversationKey) -> Ticket:
        return self._offer(self.edits, row.mid, row, conversation=conversation)

    def reference(self, mid: str, *, conversation: ConversationKey) -> None:
        """An event of this conversation names the message `mid`."""
        self.references.setdefault(conversation, set()).add(mid)

    def reaction(self, row: ReactionRow, *, conversation: ConversationKey) -> Ticket:
        key = (row.mid, row.user_id)
        self.reaction_conversations.setdefault(key, conversation)
        return self._offer(self.reactions, key, row, conversation=None)

    def _offer(
        self,
        merging: _Merging[RowT],
        key: Hashable,
        row: RowT,
        *,
        conversation: ConversationKey | None,
    ) -> Ticket:
        # The webhook event offering the row is the one being collected: the next noted.
        owner = len(self._collected)
        return merging.offer(key, row, owner=owner, conversation=conversation)

    def write(self, session: Session) -> list[str]:
        """Write everything, and the events of what changed (the outbox); per collected
        webhook event `applied`, `duplicate` (it changed nothing, or another event in the batch
        wrote its row) or `ignored`."""
        reads = intake_events.reads_before(session, self.clocks)
        # A conversation's users exist once it does (conversations.customer_id is checked at
        # commit): their rows, which queue their profiles, are written with new ones only.
        upserted = conversations.upsert_many(session, self.clocks.values())
        users.ensure(
            session, user_ids={id for key, row in upserted.items() if row.created for id in key}
        )
        ids = {key: row.id for key, row in upserted.items()}
        stored = messages.store_messages(session, self.messages.rows(ids))
        changed: dict[str, Collection[Any]] = {
            "messages": stored.keys(),
            "unsends": messages.store_unsends(session, self.unsends.rows(ids)),
            "edits": messages.store_edits(session, self.edits.rows(ids)),
            "reactions": reactions.store_many(session, self.reactions.rows(ids)),
        }
        if self.references:
            sync_rows.schedule_checks(
                session,
                {ids[key]: mids for key, mids in self.references.items()},
                due_at=utcnow() + GAP_CHECK_DELAY,
            )
        self._write_media(session, unsent=changed["unsends"])
        intake_events.record_changes(
            session, batch=self, changed=changed, stored=stored, reads=reads
        )
        return [
            self._outcome(number, collected, changed)
            for number, collected in enumerate(self._collected)
        ]

    def _write_media(self, session: Session, *, unsent: Collection[Any]) -> None:
        """Media rows for the attachments of the messages (made once: duplicates change
        nothing); the media of unsent messages marked for purging."""
        with_attachments = [
            entry.row.mid for entry in self.messages.merged.values() if entry.row.attachments
        ]
        if with_attachments:
            attachments.create_for_mids(session, with_attachments, archive=self.archive_media)
        if unsent:
            media.mark_deleted_of_mids(session, unsent, at=utcnow())

    def _outcome(
        self, number: int, collected: Collected, changed: dict[str, Collection[Any]]
    ) -> str:
        if not isinstance(collected, Ticket):
            # Conversation clocks only: applied (they only move forward), or kept raw only.
            return "applied" if collected is None else IGNORED
        owner = self._merging[collected.kind].merged[collected.key].owner == number
        return "applied" if owner and collected.key in changed[collected.kind] else "duplicate"
