"""Collateral auctions that span steps: English (Maker ``flip.sol``) and Dutch (``clip.sol``).

A protocol that liquidates by auction (the CDP) keeps an :class:`AuctionBook`: one row per
auction, struct of arrays. The world's keeper phase (``liqnet.market.keepers``) bids on
it every step and hands the protocol an :class:`AuctionFills` to book.

**English** (makerdao/dss ``src/flip.sol``, Liquidations 1.2, in force on 12 March 2020):
``kick`` opens an auction for ``lot`` collateral to raise ``tab`` (debt x ``chop``) with
bid 0 and end ``now + tau``. ``tend``: a bid on the whole lot must exceed the last bid,
be at most ``tab`` and beat it by the minimum increment ``beg`` (``bid >= beg x last``,
or equal ``tab``); it sets the bid's expiry ``tic = now + ttl``. Once a bid reaches
``tab``, ``dent``: bids keep ``tab`` and accept less collateral (``lot <= last / beg``);
what the lot shrinks by goes back to the vault owner (flip's ``usr``). ``deal`` closes an
auction whose bid has expired or whose end has passed with a bid: the winner gets the
lot. ``tick`` restarts (``end = now + tau``) an auction that ended with no bid: flip.sol
never closes an unbid auction. A lone keeper meets no rival, so it wins at the smallest
bid above the last: a first bid of ~0 stable units -- Black Thursday's zero bids.

**Dutch** (``src/clip.sol`` + ``src/abaci.sol``, Liquidations 2.0): ``kick`` sets ``top =
oracle x buf`` and starts the clock; the price decays by an abacus (``LinearDecrease``:
``top x (1 - t / tau)``; ``StairstepExponentialDecrease``: ``top x cut^floor(t / step)``;
``ExponentialDecrease``: ``top x cut^(t / step)``). ``take``: anyone buys collateral at the
current price, up to what the tab still needs; the auction ends when the tab is raised
(the lot left returns to the owner) or the lot is gone. ``redo`` restarts a stale auction
(elapsed > ``tail`` or price / top < ``cusp``) at a fresh ``top``, paying the caller
``tip + chip x tab`` (minted: a cost to the protocol).

Amounts of the stablecoin are "stable units"; times are hours of market time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from pydantic import Discriminator, Field, Tag

from liqnet.protocols.base import ProtocolParams

__all__ = [
    "MIN_BID",
    "AuctionBook",
    "AuctionFills",
    "AuctionParams",
    "DutchAuctionParams",
    "EnglishAuctionParams",
    "dutch_price",
]

MIN_BID = 1e-6
"""Smallest positive first bid, stable units (flip.sol only requires ``bid > 0``: a
keeper without a rival bids next to nothing)."""


class EnglishAuctionParams(ProtocolParams):
    """flip.sol's settings. Defaults: ETH-A, March 2020 (Maker governance: beg 3%, ttl
    10 minutes, tau 6 hours; after Black Thursday ttl was raised to 6 hours)."""

    kind: Literal["english"] = "english"
    beg: float = Field(0.03, gt=0.0, le=1.0, description="minimum bid increase (flip beg - 1)")
    ttl_hours: float = Field(1.0 / 6.0, gt=0.0, le=720.0, description="bid duration")
    tau_hours: float = Field(6.0, gt=0.0, le=8760.0, description="auction duration")


class DutchAuctionParams(ProtocolParams):
    """clip.sol / abaci.sol settings. Defaults: ETH-A under Liquidations 2.0 (buf 1.30,
    tail 140 min, cusp 0.40, StairstepExponentialDecrease cut 0.99 per 90 s, tip 250 DAI,
    chip 0.1%; MakerDAO governance, 2021-2023)."""

    kind: Literal["dutch"] = "dutch"
    buf: float = Field(1.30, ge=1.0, le=10.0, description="start price / oracle price")
    tail_hours: float = Field(140.0 / 60.0, gt=0.0, le=8760.0, description="reset after")
    cusp: float = Field(0.40, gt=0.0, lt=1.0, description="reset below this share of top")
    decay: Literal["linear", "stairstep", "exponential"] = "stairstep"
    cut: float = Field(0.99, gt=0.0, lt=1.0, description="price kept per step_hours")
    step_hours: float = Field(90.0 / 3600.0, gt=0.0, le=720.0, description="decay step")
    tau_hours: float = Field(6.0, gt=0.0, le=8760.0, description="linear decay to zero")
    tip_usd: float = Field(250.0, ge=0.0, le=1e9, description="flat keeper reward per redo")
    chip: float = Field(0.001, ge=0.0, le=0.1, description="keeper reward share of tab")


def _auction_kind(value: object) -> str:
    """The union's tag: ``kind``, English when a table leaves it out."""
    if isinstance(value, dict):
        return str(value.get("kind", "english"))
    return str(getattr(value, "kind", "english"))


AuctionParams = Annotated[
    Annotated[EnglishAuctionParams, Tag("english")] | Annotated[DutchAuctionParams, Tag("dutch")],
    Discriminator(_auction_kind),
]
"""Auction settings of a protocol: ``kind = "english"`` (the default) or ``"dutch"``."""


def dutch_price(params: DutchAuctionParams, top: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
    """abaci.sol's price after ``elapsed`` hours from ``top`` (vectorised)."""
    t = np.maximum(np.asarray(elapsed, dtype=float), 0.0)
    if params.decay == "linear":  # LinearDecrease
        return top * np.maximum(0.0, 1.0 - t / params.tau_hours)
    if params.decay == "stairstep":  # StairstepExponentialDecrease
        return top * params.cut ** np.floor(t / params.step_hours + 1e-9)
    return top * params.cut ** (t / params.step_hours)  # ExponentialDecrease


_FLOATS = ("lot", "tab", "debt", "raised", "bid", "tic", "end", "top", "start", "kick_price")
_INTS = ("asset", "winner", "slot", "restarts")


class AuctionBook:
    """Every auction a protocol ever kicked, one row each (rows never move).

    Columns: ``asset`` (index into :attr:`assets`), ``lot`` (collateral units still in
    the auction), ``tab`` (stable units to raise), ``debt`` (stable units of debt without
    the penalty), ``raised`` (stable units received, final when closed), ``bid``
    (English: best bid), ``winner`` (keeper index, -1 none), ``tic`` (English: expiry of
    the bid, hours; inf none), ``end`` (English: auction end), ``top`` (Dutch: start
    price, stable per unit), ``start`` (hours the price clock started), ``slot`` (the
    protocol's vault), ``kick_price`` (oracle at kick), ``restarts`` (ticks or redos),
    ``open``.
    """

    def __init__(
        self, assets: tuple[str, ...], params: EnglishAuctionParams | DutchAuctionParams
    ) -> None:
        self.assets = tuple(assets)
        self.params = params
        for name in _FLOATS:
            setattr(self, name, np.zeros(0))
        for name in _INTS:
            setattr(self, name, np.zeros(0, dtype=np.int64))
        self.open = np.zeros(0, dtype=bool)

    lot: np.ndarray
    tab: np.ndarray
    debt: np.ndarray
    raised: np.ndarray
    bid: np.ndarray
    tic: np.ndarray
    end: np.ndarray
    top: np.ndarray
    start: np.ndarray
    kick_price: np.ndarray
    asset: np.ndarray
    winner: np.ndarray
    slot: np.ndarray
    restarts: np.ndarray

    @property
    def english(self) -> bool:
        """Whether this book runs English (flip) auctions."""
        return isinstance(self.params, EnglishAuctionParams)

    def __len__(self) -> int:
        return int(self.open.size)

    def kick(
        self,
        *,
        asset: str,
        lot: np.ndarray,
        tab: np.ndarray,
        debt: np.ndarray,
        slot: np.ndarray,
        now: float,
        oracle_price: float,
    ) -> np.ndarray:
        """Open one auction per vault (vectorised); returns the new row ids."""
        lot, tab, debt = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (lot, tab, debt))
        n = lot.size
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        ids = np.arange(len(self), len(self) + n)
        english = self.english
        end = now + (self.params.tau_hours if english else math.inf)
        buf = 1.0 if english else self.params.buf  # type: ignore[union-attr]
        new = {
            "lot": lot,
            "tab": tab,
            "debt": debt,
            "raised": np.zeros(n),
            "bid": np.zeros(n),
            "tic": np.full(n, math.inf),
            "end": np.full(n, end),
            "top": np.full(n, oracle_price * buf),
            "start": np.full(n, now),
            "kick_price": np.full(n, oracle_price),
            "asset": np.full(n, self.assets.index(asset), dtype=np.int64),
            "winner": np.full(n, -1, dtype=np.int64),
            "slot": np.atleast_1d(np.asarray(slot, dtype=np.int64)),
            "restarts": np.zeros(n, dtype=np.int64),
        }
        for name, values in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        self.open = np.concatenate([self.open, np.ones(n, dtype=bool)])
        return ids

    def open_ids(self) -> np.ndarray:
        """Row ids of the open auctions, oldest first."""
        return np.flatnonzero(self.open)

    def locked_units(self) -> dict[str, float]:
        """Collateral units in open auctions, per asset."""
        lots = np.bincount(self.asset[self.open], self.lot[self.open], minlength=len(self.assets))
        return {a: float(u) for a, u in zip(self.assets, lots, strict=True)}

    def outstanding_tab(self) -> float:
        """Stable units still to raise in open auctions (English: minus the standing bids)."""
        got = self.bid if self.english else self.raised
        return float(np.maximum(self.tab[self.open] - got[self.open], 0.0).sum())

    def held_bids(self) -> float:
        """Stable units the protocol holds as standing English bids (refunded if outbid)."""
        return float(self.bid[self.open].sum()) if self.english else 0.0


@dataclass
class AuctionFills:
    """What keepers did to one protocol's auctions in one step (book it, then it's gone)."""

    stable_in: float = 0.0
    """Net stable units keepers paid in (bids minus refunds of outbid keepers, takes)."""
    collateral_out: dict[str, float] = field(default_factory=dict)
    """Collateral units paid to winning keepers (deals, takes)."""
    returned: dict[str, float] = field(default_factory=dict)
    """Collateral units returned to vault owners (dent, a Dutch lot left over)."""
    closed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Book rows that closed this step."""
    shortfall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per closed row: max(0, debt - raised), stable units (bad debt)."""
    surplus: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per closed row: max(0, raised - debt), the penalty collected."""
    incentives: float = 0.0
    """Dutch tip + chip paid to keepers (stable units the protocol mints)."""

    def add(self, bucket: dict[str, float], asset: str, units: float) -> None:
        """Add ``units`` of ``asset`` to ``collateral_out`` or ``returned``."""
        if units:
            bucket[asset] = bucket.get(asset, 0.0) + units

    def close(self, book: AuctionBook, ids: np.ndarray) -> None:
        """Close rows ``ids`` of ``book``, recording their shortfall and surplus."""
        if ids.size == 0:
            return
        book.open[ids] = False
        raised = book.raised[ids]
        self.closed = np.concatenate([self.closed, ids])
        self.shortfall = np.concatenate([self.shortfall, np.maximum(book.debt[ids] - raised, 0)])
        self.surplus = np.concatenate([self.surplus, np.maximum(raised - book.debt[ids], 0.0)])
