"""The audit trail's hash chain, checked: pure logic, no database.

Every row of `audit.trail_events` is a link of one global chain ordered by `seq`
(migration `audit_0004_hash_chain`):

    digest    = audit.row_digest(row)          computed by PostgreSQL from the stored values
    row_hash  = sha256(prev_hash || digest)     `link_hash`; the writer's INSERT computes it
                                                with the aggregate audit.chain_link
    prev_hash = row_hash of the previous row    GENESIS (32 zero bytes) for the first

The repository feeds rows in `seq` order, each with the digest PostgreSQL recomputes now
from the row as it is stored; `ChainWalk` finds the first broken link:

* `changed`  a row's stored hash does not match its content: the row was changed;
* `unlinked` a row does not follow the row before it: rows were removed or reordered
  between them (or the row before it was changed and its hash recomputed);
* `anchor_missing` a head recorded earlier is no longer in the chain: the newest rows were
  cut off, or the chain was rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

GENESIS = bytes(32)
BreakKind = Literal["changed", "unlinked", "anchor_missing"]


def link_hash(prev_hash: bytes, digest: bytes) -> bytes:
    """Return the row hash of a row with this digest following a row with `prev_hash`."""
    return hashlib.sha256(prev_hash + digest).digest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored row as the verifier sees it: its link and its digest recomputed now."""

    seq: int
    event_id: str
    ticket_id: str
    prev_hash: bytes
    row_hash: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place where the chain does not hold."""

    kind: BreakKind
    seq: int | None
    event_id: str | None
    ticket_id: str | None
    detail: str


@dataclass
class ChainWalk:
    """Walk rows in `seq` order and remember the first broken link.

    `anchor` is a row hash recorded earlier (the head printed by a previous verification):
    when given, the walk also fails if no row carries it any more.
    """

    anchor: bytes | None = None
    rows: int = 0
    head_seq: int | None = None
    head: bytes = GENESIS
    first_break: ChainBreak | None = None
    anchor_seen: bool = field(default=False)

    def feed(self, row: ChainRow) -> ChainBreak | None:
        """Check one row (the next by `seq`); return the first break found so far."""
        if self.first_break is not None:
            return self.first_break
        self.rows += 1
        if row.prev_hash != self.head:
            after = f"seq {self.head_seq}" if self.head_seq is not None else "the chain's start"
            self.first_break = ChainBreak(
                "unlinked",
                row.seq,
                row.event_id,
                row.ticket_id,
                f"row seq {row.seq} does not follow {after}: rows between them were removed "
                f"or reordered, or the row at {after} was changed",
            )
        elif row.row_hash != link_hash(row.prev_hash, row.digest):
            self.first_break = ChainBreak(
                "changed",
                row.seq,
                row.event_id,
                row.ticket_id,
                f"row seq {row.seq} (event {row.event_id}) no longer matches its hash: "
                "it was changed after it was recorded",
            )
        else:
            self.head, self.head_seq = row.row_hash, row.seq
            self.anchor_seen = self.anchor_seen or row.row_hash == self.anchor
        return self.first_break

    def finish(self) -> ChainBreak | None:
        """Return the first break once every row was fed (including a missing anchor)."""
        if self.first_break is None and self.anchor is not None and not self.anchor_seen:
            self.first_break = ChainBreak(
                "anchor_missing",
                None,
                None,
                None,
                f"no row has the recorded head {self.anchor.hex()}: the newest rows were "
                "removed or the chain was rewritten",
            )
        return self.first_break


@dataclass(frozen=True, slots=True)
class TicketChainRow:
    """A row of one ticket with its neighbours in the global chain (for `verify --ticket`)."""

    row: ChainRow
    predecessor_hash: bytes | None
    predecessor_seq: int | None
    successor_prev_hash: bytes | None
    successor_seq: int | None


def check_ticket(rows: list[TicketChainRow]) -> ChainBreak | None:
    """Return the first break among one ticket's rows and their links to their neighbours.

    Catches a changed row of the ticket (even with its own hash recomputed, since its
    successor still points at the old hash) and a removal next to one of its rows; only a
    full walk notices that one of its rows was removed from between two other tickets' rows.
    """
    for item in sorted(rows, key=lambda r: r.row.seq):
        row = item.row
        expected_prev = GENESIS if item.predecessor_hash is None else item.predecessor_hash
        if row.prev_hash != expected_prev:
            before = f"seq {item.predecessor_seq}" if item.predecessor_seq is not None else "start"
            return ChainBreak(
                "unlinked",
                row.seq,
                row.event_id,
                row.ticket_id,
                f"row seq {row.seq} does not follow {before}: rows were removed or "
                f"reordered, or the row at {before} was changed",
            )
        if row.row_hash != link_hash(row.prev_hash, row.digest):
            return ChainBreak(
                "changed",
                row.seq,
                row.event_id,
                row.ticket_id,
                f"row seq {row.seq} (event {row.event_id}) no longer matches its hash: "
                "it was changed after it was recorded",
            )
        if item.successor_prev_hash is not None and item.successor_prev_hash != row.row_hash:
            return ChainBreak(
                "changed",
                row.seq,
                row.event_id,
                row.ticket_id,
                f"the row after seq {row.seq} (seq {item.successor_seq}) does not point at it: "
                f"row seq {row.seq} was rewritten, or rows after it were removed",
            )
    return None
