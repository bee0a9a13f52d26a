"""The CDP's surplus buffer and debt auctions (makerdao/dss ``vow.sol``, ``flop.sol``).

Stable units throughout. ``surplus`` is the stablecoin the protocol owns (vow.sol
``vat.dai(vow)``): stability fees and collected penalties. Bad debt (an auction that
raised less than its debt) enters the debt queue (``fess``) and is released after
``wait`` (``flog``); released debt is cancelled against the surplus first (``heal``), and
only what the surplus cannot cover, once it is spent (``flop`` requires
``dai(vow) == 0``), is sold as debt auctions: lots raising ``sump`` for newly minted
MKR. Surplus above ``hump`` with no debt left buys MKR to burn (``flap``).

MKR price impact (:class:`~liqnet.protocols.cdp_params.FlopParams`): the market cap
``M`` is held fixed, so minting dilutes the price (``p = M / S``), and a lot sells at
``discount`` below it: ``sump / (p (1 - discount))`` MKR per lot, so ``n`` lots take the
supply to ``S (1 + sump / ((1 - discount) M)) ** n`` (:func:`supply_after_lots`).

A flop lot is kicked at ``dump`` MKR; if the market lot (what raises ``sump``) is above
it no one bids, and after ``tau`` it is ticked to ``(1 + pad)`` times its size (flop.sol
``tick``) until it is enough; bids then come at once and the lot deals ``ttl`` later (the
last bid's lifetime). Those delays are fixed at the kick from the MKR price then.
"""

from __future__ import annotations

import math

import numpy as np

from liqnet.protocols.cdp_params import FlopParams


def supply_after_lots(
    supply: float, market_cap: float, sump: float, discount: float, n: int
) -> float:
    """MKR supply after ``n`` lots of ``sump`` sold at ``discount`` with the cap fixed."""
    return supply * (1.0 + sump / ((1.0 - discount) * market_cap)) ** n


class Vow:
    """Surplus, debt queue and the debt auctions of one CDP (amounts in stable units).

    The owner moves the stablecoin: :meth:`deal_flops` and :meth:`flap` return the
    units bought in or paid out, and the protocol transfers them.
    """

    def __init__(self, params: FlopParams, surplus: float, hump: float) -> None:
        self.params = params
        self.surplus = surplus  # vow.sol vat.dai(vow)
        self.hump = hump
        self.queued_times = np.empty(0)  # hours of market time each queued debt entered
        self.queued = np.empty(0)  # vow.sol sin[era]: queued bad debt
        self.free_sin = 0.0  # released (flogged) bad debt not yet healed or auctioned
        self.ash = 0.0  # vow.sol Ash: debt in open debt auctions
        self.mkr_supply = params.mkr_supply
        self.mkr_market_cap = params.mkr_price_usd * params.mkr_supply
        self.flop_deal_times = np.empty(0)  # hours: when each open lot deals
        # Totals, for reports and tests.
        self.healed = 0.0
        self.flop_lots = 0
        self.flop_raised = 0.0
        self.mkr_minted = 0.0
        self.flapped = 0.0
        self.mkr_burned = 0.0

    @property
    def mkr_price(self) -> float:
        """MKR price in USD under the fixed-cap rule."""
        return self.mkr_market_cap / self.mkr_supply

    @property
    def sin(self) -> float:
        """All bad debt not yet covered: queued, released and in open debt auctions."""
        return float(self.queued.sum()) + self.free_sin + self.ash

    def backstop(self) -> float:
        """Most the debt auctions can raise: MKR's market cap at the lots' discount.

        Bad debt up to this is covered by MKR holders (the design of the system), so it
        is not a loss of the protocol's own equity; beyond it, it is.
        """
        return self.mkr_market_cap * (1.0 - self.params.discount)

    def fess(self, amount: float, now: float) -> None:
        """Queue ``amount`` of bad debt at time ``now`` (hours)."""
        if amount > 0.0:
            self.queued = np.append(self.queued, amount)
            self.queued_times = np.append(self.queued_times, now)

    def flog(self, now: float) -> None:
        """Release queued debt older than ``wait``."""
        ready = self.queued_times + self.params.wait_hours <= now + 1e-9
        if ready.any():
            self.free_sin += float(self.queued[ready].sum())
            self.queued, self.queued_times = self.queued[~ready], self.queued_times[~ready]

    def heal(self) -> float:
        """Cancel released debt against the surplus; returns the amount healed."""
        amount = min(self.surplus, self.free_sin)
        self.surplus -= amount
        self.free_sin -= amount
        self.healed += amount
        return amount

    def kick_flops(self, now: float) -> int:
        """Start debt auctions for released debt the surplus could not cover (vow.flop).

        Lots of ``sump`` while the surplus is spent and at least ``sump`` is released.
        Returns how many were kicked.
        """
        p = self.params
        if self.surplus > 0.0 or self.free_sin < p.sump_usd:
            return 0
        n = int(self.free_sin // p.sump_usd)
        self.free_sin -= n * p.sump_usd
        self.ash += n * p.sump_usd
        # The lot that raises sump at today's price; ticks until the offered lot reaches it.
        need = p.sump_usd / (self.mkr_price * (1.0 - p.discount))
        ticks = max(0, math.ceil(math.log(need / p.dump_units) / math.log(1.0 + p.pad) - 1e-12))
        deal = now + ticks * p.tau_hours + p.ttl_hours
        self.flop_deal_times = np.append(self.flop_deal_times, np.full(n, deal))
        return n

    def deal_flops(self, now: float) -> float:
        """Deal the lots due by ``now``: mint their MKR; returns the stable units raised."""
        due = self.flop_deal_times <= now + 1e-9
        n = int(np.count_nonzero(due))
        if n == 0:
            return 0.0
        self.flop_deal_times = self.flop_deal_times[~due]
        p = self.params
        supply = supply_after_lots(self.mkr_supply, self.mkr_market_cap, p.sump_usd, p.discount, n)
        self.mkr_minted += supply - self.mkr_supply
        self.mkr_supply = supply
        raised = n * p.sump_usd
        self.ash -= raised
        self.flop_lots += n
        self.flop_raised += raised
        return raised

    def flap(self) -> float:
        """Sell surplus above ``hump`` for MKR to burn; returns the stable units sold.

        Only with no bad debt outstanding (vow.sol flap: ``sin - Sin - Ash == 0``). The
        MKR bought is burned, with the cap held fixed (the price rises as ``M / S``).
        """
        if self.sin > 0.0 or self.surplus <= self.hump:
            return 0.0
        amount = self.surplus - self.hump
        burned = min(amount / self.mkr_price, 0.5 * self.mkr_supply)
        self.surplus -= amount
        self.mkr_supply -= burned
        self.flapped += amount
        self.mkr_burned += burned
        return amount
