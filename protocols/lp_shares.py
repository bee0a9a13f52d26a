"""LP units of a pooled vault: deposits mint, withdrawals burn, runs follow NAV per unit.

A vault's LPs own it through units. As in an EIP-4626 tokenized vault (``convertToShares``
= assets x totalSupply / totalAssets; GMX v2 market tokens are priced the same way, pool
value / supply), a deposit mints units and a withdrawal burns them at the current NAV per
unit, so neither moves the value of the units that stay. The LPs' fear of losses is the
drawdown of NAV per unit from its running peak: a withdrawal shrinks the vault but loses
no one anything, so it frightens no one; a trading loss lowers every unit's value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from liqnet.protocols.base import drawdown
from liqnet.protocols.flows import run_flows

if TYPE_CHECKING:
    from liqnet.protocols.base import Protocol


class LPShares:
    """The LP units of ``vault``, and the LPs' deposits, withdrawals and runs.

    Args:
        vault: The protocol whose capital the units are.
        account: The LPs' outside account (``"lps"``, ``"depositors"``).
        nav: The LPs' claim (NAV) now, in USD.
        available: USD the vault can pay out to LPs now.
        book: Books LP money in (+) or out (-) on the vault's own ledger (the transfer
            itself moves ``cash``); ``None`` when the vault needs nothing beyond its cash.
        fall_tolerance: Drawdown of NAV per unit the LPs shrug off.
        usage_limit: Usage (the vault's exposure / NAV) beyond which LPs grow wary ...
        usage_weight: ... by this much fear per unit of excess usage.
    """

    def __init__(
        self,
        vault: Protocol,
        account: str,
        nav: Callable[[], float],
        available: Callable[[], float],
        book: Callable[[float], None] | None = None,
        *,
        fall_tolerance: float,
        usage_limit: float,
        usage_weight: float,
    ) -> None:
        self.vault, self.account = vault, account
        self.nav, self.available, self.book = nav, available, book
        self.fall_tolerance, self.usage_limit, self.usage_weight = (
            fall_tolerance,
            usage_limit,
            usage_weight,
        )
        self.units = max(nav(), 0.0)  # one unit per USD at the opening
        self.peak = 1.0  # running peak of NAV per unit

    def unit_value(self, nav: float | None = None) -> float:
        """NAV per unit (of ``nav``, or of the NAV now); 1 while no units are out."""
        nav = self.nav() if nav is None else nav
        return nav / self.units if self.units > 0.0 else 1.0

    def drawdown(self, nav: float | None = None) -> float:
        """Fall of NAV per unit below its running peak (the peak moves up first)."""
        value = self.unit_value(nav)
        self.peak = max(self.peak, value)
        return drawdown(value, self.peak)

    def fear(self, usage: float, nav: float | None = None) -> float:
        """The LPs' run signal, in [0, 1]: losses per unit beyond the tolerance, and excess usage.

        Capped at 1, the fear of a wind-down (:func:`run_flows`): usage is exposure over
        NAV, so it grows without bound as NAV nears 0, and an uncapped signal (millions,
        seen in vol_regime) left the LPs' remembered fear so high that no money came back
        for days after the NAV recovered.
        """
        fall = self.drawdown(nav)
        losses = min(1.0, 5.0 * max(0.0, fall - self.fall_tolerance))
        return min(1.0, losses + self.usage_weight * max(0.0, usage - self.usage_limit))

    def _booker(self, nav: float) -> Callable[[float], None]:
        """Mint (+ USD) or burn (- USD) units at ``nav``'s value per unit, then book."""
        if self.units <= 0.0:  # an emptied vault opens afresh at 1 USD per unit
            self.units, self.peak = max(nav, 0.0), 1.0
        value = self.unit_value(nav)

        def book(usd: float) -> None:
            # (A vault worth nothing pays nothing out and takes nothing in: run_flows
            # serves max(nav, 0).)
            if value > 0.0:
                self.units = max(0.0, self.units + usd / value)
            if self.book is not None:
                self.book(usd)

        return book

    def act(
        self,
        usage: float,
        days: float,
        turnover: float,
        sensitivity: float,
        memory: float,
        *,
        nav: float | None = None,
        available: Callable[[], float] | None = None,
    ) -> tuple[float, float]:
        """The LPs' inflow and withdrawals this step (:func:`run_flows`); returns both.

        ``nav`` is the vault's NAV now, when the caller already asked for it;
        ``available`` replaces the vault's own ``available`` for this step (a caller
        that has read what it depends on).
        """
        nav = self.nav() if nav is None else nav
        signal = self.fear(usage, nav)
        return run_flows(
            self.vault,
            self.account,
            nav,
            signal,
            days,
            turnover,
            sensitivity,
            memory,
            self.available if available is None else available,
            self._booker(nav),
        )

    def withdraw(self, usd: float) -> float:
        """One LP's voluntary withdrawal of ``usd`` (at most what is available); the paid."""
        paid = min(max(usd, 0.0), self.available())
        book = self._booker(self.nav())
        self.vault.world.transfer(self.vault, self.account, usd=paid)
        book(-paid)
        return paid
