"""A dYdX/GMX-like perpetual-futures exchange with an LP vault as counterparty.

Per market (asset) there is a long and a short position book. Funding accrues through a
cumulative funding index ``F`` (USD per unit, paid by longs), so accrual is O(1) and
the liquidation ordering is invariant to price, funding and the maintenance margin:

- long ``q``: equity ``m + q (p - e) - q (F - F0)`` falls below ``mmr q p`` exactly when
  ``e - F0 - m / q  >  p (1 - mmr) - F``;
- short ``s``: equity ``m - s (p - e) + s (F - F0)`` falls below ``mmr s p`` exactly when
  ``e + m / s - F0  <  p (1 + mmr) - F``.

Cash identity: ``cash = margins + vault_cash + insurance_fund + treasury``. The vault
books every trader's profit and loss; a bankrupt trader's deficit is covered by the
insurance fund, then by the LP vault (realised bad debt), and only what would push the
vault's NAV below zero is taken from winners by auto-deleveraging (:mod:`perp_adl`).
Funding follows the mark (pool) / index (oracle) premium (:mod:`perp_funding`).
"""

from __future__ import annotations

from collections.abc import Callable

import mesa
import numpy as np

from liqnet.core.units import HOURS_PER_YEAR
from liqnet.protocols import perp_adl, perp_churn, perp_funding
from liqnet.protocols.base import (
    LiquidationOffer,
    LiquidationOutcome,
    Protocol,
    bounded_step,
)
from liqnet.protocols.flows import TreasuryReads, churn_then_flows, lendable_usd, needed_usd
from liqnet.protocols.lp_shares import LPShares
from liqnet.protocols.perp_book import SIDE_FIELDS, PerpMarket, PerpParams, PerpSide

_DAYS_PER_YEAR = 365.0


class PerpExchange(Protocol[PerpParams]):
    """Perpetual-futures exchange: margin, funding, liquidations, insurance fund, ADL."""

    type_name = "perp"
    Params = PerpParams

    def __init__(self, model: mesa.Model, protocol_id: str, params: PerpParams) -> None:
        super().__init__(model, protocol_id, params)
        assets = self.world.asset_names
        unknown = sorted(set(params.markets) - set(assets))
        if unknown:
            raise ValueError(
                f"protocol {protocol_id!r}: markets {unknown} are not market assets "
                f"(allowed: {list(assets)})"
            )
        stack = self.world.position_stack("perp.sides", SIDE_FIELDS)
        self.markets = {a: PerpMarket(a, m, stack) for a, m in params.markets.items()}
        self.leverages = params.leverages()  # opening leverage's distribution
        shares = np.array([m.share for m in params.markets.values()])
        self.market_shares: list[float] = (shares / shares.sum()).tolist()
        """Each market's share of the book, in market order (its ``share`` normalised)."""
        for market in self.markets.values():  # mark at the index: the interest component
            market.funding_rate_hourly = params.interest_rate_8h / 8.0
        self.vault_cash = params.vault_usd
        self.insurance_fund = params.insurance_fund_usd
        self.treasury = params.treasury_usd
        self.price_multiplier = 1.0
        self.adl_usd = 0.0  # winners' profit forfeited to cover deficits the vault can't
        self.adl_closed_usd = 0.0  # notional closed by either kind of ADL
        # Edges come from their own stream, so the user stream's draws are unchanged.
        self._edge_rng = self.world.rng_for(f"protocol:{protocol_id}:edges")
        capital = self.vault_cash + self.insurance_fund + self.treasury
        self.world.transfer("lps", self, usd=capital)
        self._seed_positions(self.world.rng_for(f"protocol:{protocol_id}:init"))
        # The opening book's fees are part of the starting treasury, not income earned in
        # the run: revenue counts from step 0, as the lending pools' does.
        self.revenue = 0.0
        # LPs shrug off ordinary swings of trader PnL; losses beyond 10% of their units'
        # peak value, or open interest far above the vault, make them run.
        self.lp = LPShares(
            self, "lps", self.lp_nav, self.vault_free_cash, self._book_vault,
            fall_tolerance=0.1, usage_limit=3.0, usage_weight=0.1,
        )  # fmt: skip

    # -- set-up and users --------------------------------------------------------------
    def _open(self, market: PerpMarket, side: PerpSide, notional: np.ndarray, rng) -> np.ndarray:
        """Open positions on one side at the oracle price; traders pay margin and fees.

        Returns the new slots, not yet marked in the liquidation index.
        """
        p = self.params
        price = self.world.oracle_prices[market.asset]
        leverage = self.leverages.sample(rng, notional.size)
        # (minimum/maximum: np.clip's Python wrapper costs more than the clipping here.)
        leverage = np.minimum(np.maximum(leverage, 1.0), 1.0 / market.initial_margin)
        margin = notional / leverage
        carry = perp_funding.expected_carry(p, market, side.is_long)
        slots = side.add(
            mark=False,
            size=notional / price,
            entry=price,
            margin=margin,
            funding_entry=market.funding_index,
            edge=perp_funding.draw_edges(self._edge_rng, notional.size, carry, p.trader_edge_mean),
        )
        fees = p.trading_fee * self.price_multiplier * float(notional.sum())
        self.world.transfer("traders", self, usd=float(margin.sum()) + fees)
        self.treasury += fees
        self.revenue += fees
        return slots

    def _draw_notional(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mean = self.params.open_interest_usd / self.params.positions
        return mean * rng.lognormal(-0.5, 1.0, n)

    def _side_share(self, side: PerpSide) -> float:
        return self.params.long_share if side.is_long else 1.0 - self.params.long_share

    def _seed_positions(self, rng: np.random.Generator) -> None:
        p = self.params
        for market, share in zip(self.markets.values(), self.market_shares, strict=True):
            for side in market.sides.values():
                n = max(1, round(p.positions * share * self._side_share(side)))
                notional = self._draw_notional(rng, n)
                notional *= p.open_interest_usd * share * self._side_share(side) / notional.sum()
                self._open(market, side, notional, rng)
                side.index.rebuild(full=True)

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Traders close and open positions; LPs deposit and withdraw (runs).

        Trader churn is batched every ``churn_interval_hours`` (see
        :meth:`~liqnet.protocols.base.Protocol.churn_days`); LPs act every step.
        """
        days = dt_years * _DAYS_PER_YEAR
        churn = self.churn_days(days, self.params.churn_interval_hours)
        if churn:
            self._traders_act(churn, rng)
        self._lps_act(days)

    # Every exchange's churn as one array program, then each one's flows.
    act_users_stacked = churn_then_flows(
        perp_churn.trader_churn, lambda exchange, days: exchange._lps_act_stacked(days)
    )

    def _traders_act(self, days: float, rng: np.random.Generator) -> None:
        """This exchange's trader churn (:func:`perp_churn.trader_churn` of one)."""
        perp_churn.trader_churn([self], [days], [rng])

    def _close_voluntarily(
        self, market: PerpMarket, side: PerpSide, slots: np.ndarray, price: float
    ) -> np.ndarray:
        """Healthy traders of ``slots`` close at ``price``; returns the closed (unmarked)
        slots (the churn's closing, for one side)."""
        return perp_churn.close_voluntarily(self, market, side, slots, price)

    def _lps_act(self, days: float) -> None:
        nav = self.lp_nav()  # once: LPShares.act would ask for it again
        self._serve_lps(days, nav, self.open_interest(), None)

    def _lps_act_stacked(self, days: float) -> None:
        """:meth:`_lps_act` of an exchange of exactly this type (no override to respect):
        the traders' PnL and open interest read once, as LP money moves neither."""
        pnl, open_interest = self.traders_pnl(), self.open_interest()
        nav = self._lp_claim(self.vault_cash - pnl)
        self._serve_lps(days, nav, open_interest, lambda: self._free_cash(pnl, open_interest))

    def _serve_lps(
        self, days: float, nav: float, open_interest: float, available: Callable[[], float] | None
    ) -> None:
        p = self.params
        self.lp.act(
            open_interest / max(nav, 1.0),
            days,
            p.lp_turnover_per_day,
            p.lp_run_sensitivity,
            p.risk_memory_days,
            nav=nav,
            available=available,
        )

    def _book_vault(self, usd: float) -> None:
        """LP money in (+) or out (-) is the vault's."""
        self.vault_cash += usd

    # -- balance sheet -----------------------------------------------------------------
    def traders_pnl(self) -> float:
        """Unrealised PnL of all traders at oracle prices (the vault's liability)."""
        # PerpSide.pnl(None, ...) inlined: the balance sheet asks for this ~10 times a
        # step per exchange, and the calls cost more than the arithmetic.
        prices = self.world.oracle_prices
        total = 0.0
        for market in self.markets.values():
            price, funding = prices[market.asset], market.funding_index
            for side in market.sides.values():
                sums = side.sums
                size = sums["size"]
                price_pnl = price * size - sums["size_entry"]
                funding_pnl = funding * size - sums["size_funding"]
                total += side.sign * (price_pnl - funding_pnl)
        return total

    def open_interest(self) -> float:
        """Total notional of open positions at oracle prices."""
        prices = self.world.oracle_prices
        total = 0.0
        for market in self.markets.values():
            size = 0.0
            for side in market.sides.values():
                size += side.sums["size"]
            total += prices[market.asset] * size
        return total

    def vault_nav(self) -> float:
        """LP vault net asset value: its cash minus what it owes traders."""
        return self.vault_cash - self.traders_pnl()

    def lp_nav(self) -> float:
        """The LPs' claim: vault NAV plus the credit that flows through the vault.

        LPs are first-loss capital: in a wind-down their claim ranks behind credit owed,
        so it is at most the exchange's equity.
        """
        return self._lp_claim(self.vault_nav())

    def _lp_claim(self, vault_nav: float) -> float:
        claim = vault_nav + self.credit_lent - self.credit_borrowed
        return min(claim, max(0.0, self.equity())) if self.defaulted else claim

    def vault_free_cash(self) -> float:
        """Vault cash not reserved for trader profits and open interest."""
        return self._free_cash(self.traders_pnl(), self.open_interest())

    def _free_cash(self, traders_pnl: float, open_interest: float) -> float:
        reserved = max(0.0, traders_pnl)
        reserved += self.params.vault_reserve_ratio * open_interest
        return max(0.0, self.vault_cash - reserved)

    def own_equity(self) -> float:
        """Insurance fund + treasury + LP vault NAV.

        LPs are the exchange's first-loss capital (the counterparty to every trader), so
        their NAV is equity, junior to anything the exchange borrows: the exchange is
        insolvent once losses exhaust the vault, the insurance fund and the treasury.
        """
        return self.insurance_fund + self.treasury + self.vault_nav()

    def total_assets(self) -> float:
        """All cash the exchange holds."""
        return self.cash

    def held_units(self) -> dict[str, float]:
        """Perps are cash-settled: the exchange holds no asset units."""
        return {}

    def asset_exposures(self) -> dict[str, float]:
        """USD size of the vault's net position per market (it takes the other side)."""
        return {
            m.asset: abs(m.sides["long"].sums["size"] - m.sides["short"].sums["size"])
            * self.world.oracle_prices[m.asset]
            for m in self.markets.values()
        }

    def available_cash(self) -> float:
        """Free vault cash: margins and reserved profits are not the exchange's to pay."""
        return self.vault_free_cash()

    def receive_cash(self, amount: float) -> None:
        """Credit flows through the LP vault (it is the vault that runs short)."""
        self.cash += amount
        self.vault_cash += amount

    def pay_cash(self, amount: float) -> None:
        """Pay from the LP vault."""
        self.cash -= amount
        self.vault_cash -= amount

    def liquidity_buffer_usd(self) -> float:
        """``liquidity_buffer_days`` of LP turnover on the vault's cash."""
        p = self.params
        return p.liquidity_buffer_days * p.lp_turnover_per_day * max(self.vault_cash, 0.0)

    def pledgeable_assets(self) -> float:
        """The insurance fund and treasury: the exchange's own cash outside the LP vault.

        Traders' margins and the vault cash reserved for their profits are theirs, so
        they are never pledged.
        """
        return max(0.0, self.insurance_fund + self.treasury)

    def idle_liquidity(self) -> float:
        """Free vault cash beyond the buffer kept for LP withdrawals."""
        return max(0.0, self.vault_free_cash() - self.liquidity_buffer_usd())

    def treasury_reads(self, days: float, maturing_usd: float = 0.0) -> TreasuryReads:
        """:meth:`Protocol.treasury_reads`, the traders' PnL, open interest and outflows
        read once (the free vault cash is the available cash)."""
        free = self._free_cash(self.traders_pnl(), self.open_interest())
        buffer = self.liquidity_buffer_usd()
        idle = max(0.0, free - buffer)
        outflows = self.projected_outflows(days)
        return TreasuryReads(
            self.funding_rate(),
            lendable_usd(idle, outflows, maturing_usd),
            idle,
            needed_usd(self.liquidity_shortfall, buffer, outflows, maturing_usd, free),
            free,
        )

    # -- levers and accrual ------------------------------------------------------------
    def apply_levers(self, levers: np.ndarray) -> None:
        """``risk`` moves maintenance and initial margins; ``price`` scales fees/funding."""
        p = self.params
        for market in self.markets.values():
            gap = market.initial_margin - market.maintenance_margin
            market.maintenance_margin = bounded_step(
                market.maintenance_margin, levers[0], p.risk_step, *p.maintenance_margin_bounds
            )
            market.initial_margin = market.maintenance_margin + gap
        self.price_multiplier = bounded_step(
            self.price_multiplier, levers[1], p.price_step, *p.price_multiplier_bounds
        )

    def accrue(self, dt_years: float) -> None:
        """Advance each market's funding index by the clamped hourly funding rate, then
        deleverage a side whose profit has grown too large for the vault (GMX v2)."""
        p = self.params
        hours = dt_years * HOURS_PER_YEAR
        for market in self.markets.values():
            longs, shorts = (market.sides[s].sums["size"] for s in ("long", "short"))
            skew = (longs - shorts) / max(longs + shorts, 1e-12)
            price = self.world.oracle_prices[market.asset]
            # dYdX v4: premium of the mark (here the pool) over the index (the oracle),
            # sampled once a step, plus interest, as an 8-hour rate paid hourly, clamped.
            mark = self.world.pool_price(market.asset)
            premium = perp_funding.premium(mark, price, p.impact_spread)
            cap_8h = p.funding_cap_multiple * (market.initial_margin - market.maintenance_margin)
            rate_8h = perp_funding.funding_rate_8h(
                premium, skew, p.skew_premium, p.interest_rate_8h, cap_8h, self.price_multiplier
            )
            market.funding_rate_hourly = rate_8h / 8.0
            market.funding_index += market.funding_rate_hourly * hours * price
        perp_adl.deleverage_over_threshold(self)

    # -- liquidations ------------------------------------------------------------------
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """Positions below maintenance margin at the oracle (index) price."""
        offers = []
        reward = self.params.keeper_reward_usd
        for market in self.markets.values():
            price = self.world.oracle_prices[market.asset]
            mmr, funding = market.maintenance_margin, market.funding_index
            for name, side in market.sides.items():
                if side.is_long:
                    slots = side.index.select(price * (1.0 - mmr) - funding, above=True)
                else:
                    slots = side.index.select(price * (1.0 + mmr) - funding, above=False)
                if slots.size:
                    zeros = np.zeros(slots.size)
                    offers.append(
                        LiquidationOffer(
                            self,
                            f"{market.asset}:{name}",
                            market.asset,
                            slots,
                            zeros,
                            zeros,
                            np.full(slots.size, reward),
                        )
                    )
        return offers

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Close positions at the oracle price; penalty to the insurance fund."""
        asset, side_name = offer.book.split(":")
        market = self.markets[asset]
        side = market.sides[side_name]
        slots = offer.slots[accepted]
        price = self.world.oracle_prices[asset]
        block = side.positions.block(slots)  # one gather: size, entry, margin, funding_entry
        size, margin = block[0], block[2]
        pnl = side.block_pnl(block, price, market.funding_index)
        equity = margin + pnl
        penalty = np.minimum(self.params.liquidation_penalty * size * price, np.maximum(equity, 0))
        payout = np.maximum(equity - penalty, 0.0)
        deficit = np.maximum(-equity, 0.0)
        side.close(slots, block=block)
        # (ufunc reductions directly: ndarray.sum adds a Python wrapper per call.)
        total = np.add.reduce
        penalties = float(total(penalty))
        self.vault_cash -= float(total(pnl))
        self.insurance_fund += penalties
        self.revenue += penalties
        self.world.transfer(self, "traders", usd=float(total(payout)))
        rewards = float(total(offer.reward_usd[accepted]))
        from_insurance = min(rewards, self.insurance_fund)
        self.insurance_fund -= from_insurance
        self.vault_cash -= rewards - from_insurance
        self.cash -= rewards
        self.liquidated_usd_step += float(total(size * price))
        bad_debt = perp_adl.cover_deficit(self, market, side_name, deficit, price)
        # Most liquidation flow is absorbed on the exchange's own book and by the vault;
        # the rest reaches the spot market (hedging, cross-venue arbitrage).
        sold = self.params.spot_flow_share * float(total(size))
        return LiquidationOutcome(
            bad_debt_usd=bad_debt, impact_units=sold if side.is_long else -sold
        )

    # -- observation -------------------------------------------------------------------
    def feature_values(self) -> dict[str, float]:
        """Balance-sheet ratios and parameters for the observation vector."""
        assets = max(self.total_assets(), 1.0)
        markets = list(self.markets.values())
        return {
            "equity_to_assets": self.equity() / assets,
            "cash_to_assets": self.vault_free_cash() / assets,
            "utilization": self.open_interest() / max(self.vault_nav(), 1.0),
            "liquidity_shortfall": self.liquidity_shortfall / assets,
            "reserves_to_assets": self.insurance_fund / assets,
            "bad_debt_to_assets": self.realised_bad_debt / assets,
            "risk_parameter": sum(m.maintenance_margin for m in markets) / len(markets),
            "price_parameter": self.price_multiplier,
            "open_interest_to_assets": self.open_interest() / assets,
            "funding_rate": sum(m.funding_rate_hourly for m in markets) / len(markets) * 8760,
            "liquidated_to_assets": self.liquidated_usd_step / assets,
            "credit_lent_to_assets": self.credit_lent / assets,
            "credit_borrowed_to_assets": self.credit_borrowed / assets,
        }
