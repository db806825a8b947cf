"""`triageflow audit verify`: walk the trail's hash chain and report the first broken link."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from services.audit.verify import ChainBreak, ChainWalk, check_ticket

if TYPE_CHECKING:
    from services.audit.repository import PostgresAuditRepository

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Below any seq the database can assign: the walk starts before the first row.
_BEFORE_FIRST_SEQ = -(2**63)


async def walk_chain(
    store: PostgresAuditRepository, *, anchor: bytes | None = None, page: int = 5000
) -> ChainWalk:
    """Feed every row of the trail, in chain order, to a `ChainWalk`; stop at the first break."""
    walk = ChainWalk(anchor=anchor)
    after = _BEFORE_FIRST_SEQ
    while rows := await store.chain_page(after_seq=after, limit=page):
        for row in rows:
            if walk.feed(row) is not None:
                return walk
        after = rows[-1].seq
    walk.finish()
    return walk


async def explain_break(
    store: PostgresAuditRepository, broken: ChainBreak, prev_hash: bytes | None
) -> str:
    """Return the break's detail, telling a reordering from a removal where the data can."""
    if broken.kind != "unlinked" or prev_hash is None:
        return broken.detail
    seq = await store.seq_with_row_hash(prev_hash)
    if seq is not None:
        return f"{broken.detail}. The row it points at is at seq {seq}: rows were reordered"
    return f"{broken.detail}. No row has the hash it points at: that row was removed or changed"


def _parse_anchor(anchor: str | None) -> bytes | None:
    if anchor is None:
        return None
    try:
        value = bytes.fromhex(anchor)
    except ValueError as error:
        raise typer.BadParameter("not a hex string", param_hint="--anchor") from error
    if len(value) != 32:
        raise typer.BadParameter("a row hash is 32 bytes (64 hex digits)", param_hint="--anchor")
    return value


@audit_app.command("verify")
def verify(
    ticket: Annotated[
        str | None,
        typer.Option(help="Check one ticket's rows and their links to their neighbours only."),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="A head printed by an earlier run (hex): fail if it is gone."),
    ] = None,
    page: Annotated[int, typer.Option(min=1, help="Rows fetched per query.")] = 5000,
) -> None:
    """Walk the hash chain of the trail; exit 1 at the first changed, removed or moved row."""
    from services.cli.main import audit_store

    expected_head = _parse_anchor(anchor)

    async def run() -> tuple[ChainBreak | None, str]:
        async with audit_store() as store:
            if ticket is not None:
                return await _verify_ticket(store, ticket)
            return await _verify_chain(store, anchor=expected_head, page=page)

    broken, message = asyncio.run(run())
    if broken is None:
        out.print(message, highlight=False, markup=False)
        return
    where = (
        f" at seq {broken.seq} (event {broken.event_id}, ticket {broken.ticket_id})"
        if broken.seq is not None
        else ""
    )
    err.print(f"chain broken ({broken.kind}){where}: {message}", highlight=False, markup=False)
    raise typer.Exit(1)


async def _verify_ticket(
    store: PostgresAuditRepository, ticket: str
) -> tuple[ChainBreak | None, str]:
    rows = await store.ticket_chain(ticket)
    if not rows:
        err.print(f"no recorded events for ticket {ticket!r}", highlight=False, markup=False)
        raise typer.Exit(1)
    broken = check_ticket(rows)
    if broken is None:
        return None, (
            f"ticket {ticket}: {len(rows)} rows intact and linked to their neighbours "
            "(only a full `triageflow audit verify` notices a removed row of this ticket)"
        )
    prev = next((r.row.prev_hash for r in rows if r.row.seq == broken.seq), None)
    return broken, await explain_break(store, broken, prev)


async def _verify_chain(
    store: PostgresAuditRepository, *, anchor: bytes | None, page: int
) -> tuple[ChainBreak | None, str]:
    walk = await walk_chain(store, anchor=anchor, page=page)
    broken = walk.first_break
    if broken is None:
        head = walk.head.hex()
        return None, (
            f"chain intact: {walk.rows} rows, head seq {walk.head_seq} hash {head}\n"
            "record the head elsewhere: `triageflow audit verify --anchor <hash>` then fails "
            "if the newest rows were cut off"
        )
    prev = None
    if broken.seq is not None:
        at = await store.chain_page(after_seq=broken.seq - 1, limit=1)
        prev = at[0].prev_hash if at else None
    return broken, await explain_break(store, broken, prev)
