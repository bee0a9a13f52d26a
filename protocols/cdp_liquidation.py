"""The CDP's liquidations: ``bark`` vaults into auctions, book what keepers did.

``bark`` follows cat.sol (2020: ``lump``, partial bites) and dog.sol (``hole`` / ``Hole``
room limits): for each unsafe vault (``ink x price < art x rate x mat``) the bite takes
``lot = min(ink, lump)`` collateral and the same share of its debt, and no more than the
room left under the type's ``hole`` and the global ``Hole`` (tab = debt x chop, in the
index's order, the last vault cut to fit). The collateral and debt leave the vault for
the auction book (units stay in the protocol), in lots of at most ``lump``. ``settle``
books the keepers' fills: the stablecoin paid in is retired (the world moved it, and the
collateral paid out or returned), and each closed auction's shortfall is bad debt (to the
vow: surplus, then debt auctions) and its surplus (the penalty collected) goes to the
surplus buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from liqnet.protocols.auctions import AuctionFills
    from liqnet.protocols.cdp import CdpProtocol

_DUST = 1e-12


def _room(limit: float | None, open_tab: float) -> float:
    return np.inf if limit is None else max(0.0, limit - open_tab)


def bark(cdp: CdpProtocol) -> int:
    """Kick auctions for every unsafe vault the room allows; returns the vaults barked.

    A vault's bitten collateral is cut into lots of at most ``lump`` units, one auction
    each (cat.sol 2020: a keeper bites again and again until the vault is done).
    """
    auctions = cdp.auction_book
    assert auctions is not None
    now = cdp.now_hours()
    prices = cdp.world.oracle_prices
    global_room = _room(cdp.params.global_hole_usd, auctions.outstanding_tab())
    barked = 0
    for asset, book in cdp.books.items():
        price = prices[asset]
        slots = book.unsafe(price)
        if slots.size == 0 or global_room <= 0.0:
            continue
        columns = book.positions.columns
        ink, art = columns["ink"][slots], columns["art"][slots]
        chop = 1.0 + book.penalty
        tab = art * book.rate * chop
        # dog.sol room: hole per type and Hole overall, filled in index order, the last
        # vault cut to fit (dart = min(art, room / rate / chop)).
        room = min(global_room, _room(book.hole, _open_tab(cdp, asset)))
        before = np.cumsum(tab) - tab
        fit = np.clip((room - before) / np.maximum(tab, 1e-300), 0.0, 1.0)
        keep = fit > _DUST
        if not keep.any():
            continue
        slots, fit, ink, art = slots[keep], fit[keep], ink[keep], art[keep]
        whole = fit >= 1.0 - 1e-12
        book.set(
            slots, np.where(whole, 0.0, ink * (1.0 - fit)), np.where(whole, 0.0, art * (1.0 - fit))
        )
        book.close(slots[whole])
        lot, debt = ink * fit, art * fit * book.rate
        # Lots of at most lump units (cat.sol 2020), the debt split with them.
        lots = np.ones(slots.size, dtype=np.int64)
        if book.lump is not None:
            lots = np.maximum(1, np.ceil(lot / book.lump - 1e-9).astype(np.int64))
        auctions.kick(
            asset=asset,
            lot=np.repeat(lot / lots, lots),
            tab=np.repeat(debt * chop / lots, lots),
            debt=np.repeat(debt / lots, lots),
            slot=np.repeat(slots, lots),
            now=now,
            oracle_price=price,
        )
        global_room -= float((debt * chop).sum())
        cdp.liquidated_usd_step += float(debt.sum())
        cdp.barked += int(slots.size)
        barked += int(slots.size)
    return barked


def _open_tab(cdp: CdpProtocol, asset: str) -> float:
    """Tab still to raise in open auctions of one collateral type."""
    book = cdp.auction_book
    assert book is not None
    rows = book.open & (book.asset == book.assets.index(asset))
    got = book.bid if book.english else book.raised
    return float(np.maximum(book.tab[rows] - got[rows], 0.0).sum())


def settle(cdp: CdpProtocol, fills: AuctionFills) -> None:
    """Book the keepers' fills (the world moved the stablecoin and the collateral).

    Stablecoin paid in (net of refunds to outbid keepers) is retired; keeper incentives
    the world paid out of it are minted (vat.sol ``suck``): a cost to the surplus, the
    rest queued as debt. A closed auction's shortfall is bad debt, its surplus (the
    penalty collected) goes to the surplus buffer.
    """
    cdp.outstanding -= fills.stable_in - fills.incentives
    cdp.burned += fills.stable_in
    for bucket, totals in (
        (fills.collateral_out, cdp.auction_sold),
        (fills.returned, cdp.auction_returned),
    ):
        for asset, units in bucket.items():
            totals[asset] = totals.get(asset, 0.0) + units
    surplus = float(np.sum(fills.surplus))
    if surplus:
        cdp.vow.surplus += surplus  # cat.sol: the part of the tab above the debt
        cdp.revenue += surplus
    cdp.recognise_bad_debt(float(np.sum(fills.shortfall)))
    if fills.incentives:
        paid = min(cdp.vow.surplus, fills.incentives)
        cdp.vow.surplus -= paid
        cdp.vow.fess(fills.incentives - paid, cdp.now_hours())
        cdp.incentives += fills.incentives
