"""OptionVault (type ``options``): writes options against collateral and delta-hedges on the AMM.

Accounts and margin. Each position (one slot of the struct-of-arrays book) is a contract
between the vault and one outside account, on listed series (strike grid, daily expiries):

- ``quantity > 0``: the vault *wrote* ``quantity`` options to a buyer, who paid the premium
  in full and posts no margin (a long option cannot lose more). The sellers' margin is the
  vault's own capital: it writes only while its equity covers ``margin_multiplier`` x the
  SPAN-like stress margin of its whole book (options + hedge, ``stress.py``).
- ``quantity < 0``: an account wrote ``-quantity`` options *to* the vault (the vault is
  long) and posted USD ``margin``. It must keep ``margin - value >= margin_multiplier x``
  its stress margin; below that, liquidators close it for a keeper reward, the vault keeps
  a penalty, and what the margin does not cover is the vault's bad debt.

Marks come from a volatility surface (SVI by default) refitted to the simulated option
market (``surface.market_quotes``) at the world's volatility: its regime vol blended with
the realised vol of the oracle price. Options are priced per listed series and scattered
to positions, so a step is O(n) vectorised (no sorted LiquidationIndex: an option
account's margin is nonlinear in spot, vol and time, so no price-invariant key exists).
Rate is 0 (crypto option venues quote on the forward), which lets per-series vols enter
``portfolio_stress_loss`` (a single-vol API) exactly as total variance: with r = 0 a
price depends on ``vol^2 T`` only.

Money. Depositors' capital, premiums and margins are cash; every flow has an outside payee
(``depositors``, ``traders``, ``cex``) or goes through the pool (hedges). Hedge inventory
may be negative: a short sale of borrowed units (borrow fees neglected).
"""

from __future__ import annotations

import math

import mesa
import numpy as np

from liqnet.core.units import HOURS_PER_YEAR
from liqnet.protocols.base import (
    LiquidationOffer,
    LiquidationOutcome,
    Protocol,
    bounded_step,
)
from liqnet.protocols.lp_shares import LPShares
from liqnet.protocols.options.book import (
    BOOK_FIELDS,
    Marks,
    book_stress,
    settle_expired,
    short_stress,
    value_book,
)
from liqnet.protocols.options.pricing import black_scholes
from liqnet.protocols.options.stress import StressResult, stress_grid
from liqnet.protocols.options.surface import NeuralSurface, SmileSpec, SVISurface, market_quotes
from liqnet.protocols.options.vault_params import OptionVaultParams
from liqnet.protocols.positions import PositionArrays

_DAYS_PER_YEAR = 365.0


class OptionVault(Protocol[OptionVaultParams]):
    """Option-writing vault: premiums, SPAN-like margin, liquidations and delta hedging."""

    type_name = "options"
    Params = OptionVaultParams

    def __init__(self, model: mesa.Model, protocol_id: str, params: OptionVaultParams) -> None:
        super().__init__(model, protocol_id, params)
        p, world = params, self.world
        if p.underlying not in world.asset_names:
            raise ValueError(
                f"protocol {protocol_id!r}: underlying {p.underlying!r} is not a market asset "
                f"(allowed: {list(world.asset_names)})"
            )
        self.asset = p.underlying
        self.grid = stress_grid(p.stress_price_moves, p.stress_vol_moves)
        self.smile = SmileSpec(**p.smile)
        self.surface_version = 0
        self.markup, self.margin_multiplier = p.premium_markup, p.margin_multiplier
        self.units = 0.0  # hedge inventory (negative: borrowed and sold)
        self.book = PositionArrays(BOOK_FIELDS, capacity=p.positions)
        self.book_version = 0
        self.strike_unit = p.strike_step * world.oracle_prices[self.asset]
        self.realised_var = self._regime_vol() ** 2
        self._last_spot = world.oracle_prices[self.asset]
        self._quote_rng = world.rng_for(f"protocol:{protocol_id}:quotes")
        self._fit_surface()
        self.perceived_risk, self.hedged_usd_step = 0.0, 0.0
        self._last_hedge_step = -1
        self._cache: dict[str, tuple] = {}
        world.transfer("depositors", self, usd=p.capital_usd)
        rng = world.rng_for(f"protocol:{protocol_id}:init")
        notional = rng.lognormal(0.0, 1.0, p.positions)
        notional *= p.notional_usd / notional.sum()
        days = rng.integers(1, math.ceil(max(p.expiries_days)) + 1, p.positions)
        # The opening book's spread is starting capital, not income (revenue counts from
        # step 0, as the perp exchange's fees do).
        self._open(rng, notional, rng.random(p.positions) < p.writer_share, days / _DAYS_PER_YEAR)
        # Depositors shrug off ordinary P&L; falls of their units' value past 5% and a book
        # whose stress margin exceeds the vault's equity make them run.
        self.lp = LPShares(
            self, "depositors", self.equity, self.available_cash,
            fall_tolerance=0.05, usage_limit=1.0, usage_weight=0.2,
        )  # fmt: skip
        if p.initial_hedge:  # start hedged: the inventory is bought off-market at the oracle
            units = -self.marks().option_delta
            usd = units * world.oracle_prices[self.asset]
            self.units += units
            world.transfer("cex", self, usd=-usd, asset=self.asset, units=units)

    # -- market, surface and marks -----------------------------------------------------
    @property
    def now(self) -> float:
        """World time in years."""
        return self.world.time_years

    @property
    def spot(self) -> float:
        """Oracle price of the underlying."""
        return self.world.oracle_prices[self.asset]

    def _regime_vol(self) -> float:
        return self.world.regime_volatility(self.asset)

    def market_vol(self) -> float:
        """ATM vol of the simulated option market: regime vol blended with realised vol."""
        w = self.params.realised_vol_weight
        vol = math.sqrt((1.0 - w) * self._regime_vol() ** 2 + w * self.realised_var)
        return min(vol, self.params.max_market_vol)

    def _fit_surface(self) -> None:
        p = self.params
        self.fit_vol, self.fit_step = self.market_vol(), self.world.step_index
        expiries = np.asarray(p.quote_expiries_days) / _DAYS_PER_YEAR
        quotes = market_quotes(self.spot, self.fit_vol, expiries, self._quote_rng, self.smile)
        surface: NeuralSurface | SVISurface
        if p.surface_model == "neural":
            surface = NeuralSurface.fit(quotes, seed=self.world.seed)
        else:
            surface = SVISurface.fit(quotes)
        self.surface = surface
        self.surface_version += 1

    def marks(self) -> Marks:
        """The book at the oracle price and the current surface (cached until one changes)."""
        key = (self.spot, self.world.step_index, self.surface_version, self.book_version)
        if self._cache.get("marks", (None,))[0] == key:
            return self._cache["marks"][1]
        marks = value_book(
            self.book, self.spot, self.now, self.surface, self.strike_unit, self.grid
        )
        self._cache["marks"] = (key, marks)
        return marks

    def account_health(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Writing accounts: ``(slots, equity, requirement)``; under-margined: equity < req."""
        mk = self.marks()
        writer = mk.quantity < 0
        size = -mk.quantity[writer]
        equity = mk.margin[writer] - size * mk.price[writer]
        return mk.slots[writer], equity, self.margin_multiplier * size * mk.stress_unit[writer]

    def stress(self, greeks_approximation: bool = False) -> StressResult:
        """Stress test of the vault's whole book (options at surface vols, plus the hedge)."""
        mk = self.marks()
        key = (self._cache["marks"][0], self.units, greeks_approximation)
        if self._cache.get("stress", (None,))[0] == key:
            return self._cache["stress"][1]
        result = book_stress(mk, self.units, self.spot, self.grid, greeks_approximation)
        self._cache["stress"] = (key, result)
        return result

    def net_delta(self) -> float:
        """Options delta plus hedge inventory, in units of the underlying."""
        return self.marks().option_delta + self.units

    # -- balance sheet -----------------------------------------------------------------
    def own_equity(self) -> float:
        """Cash + hedge inventory - options written - writing accounts' equity (NAV)."""
        mk = self.marks()
        return self.cash + self.units * self.spot - mk.liability - mk.claims

    def total_assets(self) -> float:
        """Cash plus long hedge inventory."""
        return max(self.cash, 0.0) + max(self.units, 0.0) * self.spot

    def held_units(self) -> dict[str, float]:
        """Hedge inventory (negative = short sale of borrowed units)."""
        return {self.asset: self.units}

    def asset_exposures(self) -> dict[str, float]:
        """USD delta of the options book: what the vault's hedging must trade."""
        return {self.asset: abs(self.marks().option_delta) * self.spot}

    def required_capital(self) -> float:
        """``margin_multiplier`` x the stress margin of the whole book."""
        return self.margin_multiplier * self.stress().margin

    def _spare(self) -> tuple[float, float]:
        """Cash beyond accounts' margins, and equity beyond the required capital."""
        return self.cash - self.marks().margins, self.equity() - self.required_capital()

    def available_cash(self) -> float:
        """Cash that is neither accounts' margin nor needed to back the stress margin."""
        return max(0.0, min(self._spare()))

    def liquidity_buffer_usd(self) -> float:
        """``liquidity_buffer_days`` of depositor turnover on the vault's equity."""
        p = self.params
        return p.liquidity_buffer_days * p.deposit_turnover_per_day * max(self.equity(), 0.0)

    def projected_need(self, days: float, maturing_usd: float = 0.0) -> float:
        """The base projection, or 0 while capital binds: borrowed cash adds a debt as
        large as the cash, so it cannot lift ``available_cash`` above its capital cap."""
        cash, capital = self._spare()
        if capital < cash:
            return 0.0
        return super().projected_need(days, maturing_usd)

    def pledgeable_assets(self) -> float:
        """The long hedge inventory at spot (accounts' margins are theirs, not pledged)."""
        return max(self.units, 0.0) * self.spot

    def idle_liquidity(self) -> float:
        """Free cash beyond the buffer kept for depositor withdrawals."""
        return max(0.0, self.available_cash() - self.liquidity_buffer_usd())

    # -- levers and accrual ------------------------------------------------------------
    def apply_levers(self, levers: np.ndarray) -> None:
        """``risk`` moves the margin multiplier, ``price`` the premium markup (bounded)."""
        p = self.params
        self.margin_multiplier = bounded_step(
            self.margin_multiplier, levers[0], p.risk_step, *p.margin_multiplier_bounds
        )
        self.markup = bounded_step(self.markup, levers[1], p.price_step, *p.premium_markup_bounds)

    def accrue(self, dt_years: float) -> None:
        """Update realised vol; refit the surface on schedule or when the vol level moves.

        Option decay needs no entry: marks fall as expiries approach.
        """
        p = self.params
        spot = self.spot
        self.hedged_usd_step = 0.0
        decay = math.exp(-dt_years * HOURS_PER_YEAR / p.vol_memory_hours)
        move = math.log(spot / self._last_spot) ** 2 / dt_years
        self.realised_var = decay * self.realised_var + (1.0 - decay) * move
        self._last_spot = spot
        due = self.world.step_index - self.fit_step >= p.surface_refit_steps
        if due or abs(self.market_vol() / self.fit_vol - 1.0) > p.surface_refit_vol_change:
            self._fit_surface()

    # -- users -------------------------------------------------------------------------
    def _open(
        self, rng: np.random.Generator, notional: np.ndarray, writer: np.ndarray, expiry
    ) -> float:
        """New positions at listed strikes; buyers pay the ask, writers post margin.

        Returns the vault's spread income: the markup over the model value on both sides.
        """
        p, spot, n = self.params, self.spot, notional.size
        call = rng.random(n) >= p.put_share
        offset = rng.random(n) * p.moneyness_width
        strike = spot * np.where(call, 1.0 + offset, 1.0 - offset)
        strike = np.maximum(np.round(strike / self.strike_unit), 1.0) * self.strike_unit
        tau = expiry - self.now
        vol = self.surface.implied_vol(strike, tau, spot)
        value = black_scholes(spot, strike, tau, 0.0, vol, call).price
        size = notional / spot
        stress = short_stress(spot, self.grid, strike, tau, vol, call, value)
        need = self.margin_multiplier * size * stress
        buffer = p.account_margin_median * rng.lognormal(0.0, p.account_margin_dispersion, n)
        margin = np.where(writer, size * value + np.maximum(buffer, 1.05) * need, 0.0)
        premium = size * value * np.where(writer, 1.0 - self.markup, 1.0 + self.markup)
        inflow = float(np.sum(np.where(writer, margin - premium, premium)))
        self.world.transfer("traders", self, usd=inflow)
        self.book.add(
            quantity=np.where(writer, -size, size),
            strike=strike,
            expiry=expiry,
            kind=call.astype(float),
            premium=premium,
            margin=margin,
        )
        self.book_version += 1
        return float(np.sum(size * value)) * self.markup

    def _close(self, slots: np.ndarray) -> None:
        self.book.close(slots)
        self.book_version += 1

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Expiries settle; holders close and open positions; depositors deposit and run."""
        p, days = self.params, dt_years * _DAYS_PER_YEAR
        self._settle_expired()
        mk = self.marks()
        n_close = rng.poisson(p.turnover_per_day * days * mk.slots.size)
        picked = np.isin(mk.slots, self.book.sample_active(rng, n_close))
        markup = np.where(mk.quantity > 0, -self.markup, self.markup)
        # Buyers sell back at the bid; writers buy back at the ask out of their margin, if
        # that leaves them something (an underwater writer waits to be liquidated).
        pay = np.where(mk.quantity > 0, 0.0, mk.margin) + mk.quantity * mk.price * (1 + markup)
        picked &= pay > 0
        picked &= np.cumsum(np.where(picked & (mk.quantity > 0), pay, 0.0)) <= max(self.cash, 0)
        if picked.any():
            self.world.transfer(self, "traders", usd=float(pay[picked].sum()))
            # Closing at the bid or ask earns the markup over the mark, as opening does.
            closed = float(np.sum(np.abs(mk.quantity[picked]) * mk.price[picked]))
            self.revenue += closed * self.markup
            self._close(mk.slots[picked])
        demand = math.exp(-p.demand_elasticity * (self.markup - p.premium_markup))
        n_new = rng.poisson(p.turnover_per_day * days * p.positions * min(demand, 2.0))
        equity = self.equity()
        written = float(np.sum(np.maximum(self.marks().quantity, 0.0))) * self.spot
        if n_new and not self.defaulted and self.required_capital() < equity:
            notional = p.notional_usd / p.positions * rng.lognormal(-0.5, 1.0, n_new)
            writer = rng.random(n_new) < p.writer_share
            room = p.max_notional_to_equity * equity - written
            fits = writer | (np.cumsum(np.where(writer, 0.0, notional)) <= room)
            tenor = rng.choice(np.asarray(p.expiries_days), n_new)
            expiry = np.ceil(self.now * _DAYS_PER_YEAR + tenor) / _DAYS_PER_YEAR
            self.revenue += self._open(rng, notional[fits], writer[fits], expiry[fits])
        self._depositors_act(days)

    def _settle_expired(self) -> None:
        """Cash-settle expired options at the oracle price; writers pay from their margin."""
        done, paid, bad_debt = settle_expired(self.book, self.now, self.spot)
        if done.size:
            self.realised_bad_debt += bad_debt
            self.world.transfer(self, "traders", usd=paid)
            self._close(done)

    def _depositors_act(self, days: float) -> None:
        p = self.params
        usage = self.required_capital() / max(self.equity(), 1.0)
        self.lp.act(usage, days, p.deposit_turnover_per_day, p.run_sensitivity, p.risk_memory_days)

    # -- liquidations and hedging ------------------------------------------------------
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """Writing accounts whose equity is below their (multiplied) stress margin."""
        slots, equity, requirement = self.account_health()
        under = slots[equity < requirement]
        if under.size == 0:
            return []
        zeros = np.zeros(under.size)
        reward = np.full(under.size, self.params.keeper_reward_usd)
        return [LiquidationOffer(self, "accounts", self.asset, under, zeros, zeros, reward)]

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Close accounts at the mark: the vault keeps value owed plus a penalty."""
        slots = offer.slots[accepted]
        mk = self.marks()
        at = np.searchsorted(mk.slots, slots)
        size = -mk.quantity[at]
        equity = mk.margin[at] - size * mk.price[at]
        cap = np.maximum(equity, 0.0)
        penalty = np.minimum(self.params.liquidation_penalty * size * self.spot, cap)
        refund = float(np.maximum(equity - penalty, 0.0).sum())
        deficit = np.maximum(-equity, 0.0)
        self.cash -= float(offer.reward_usd[accepted].sum())
        self.world.transfer(self, "traders", usd=refund)
        self.realised_bad_debt += float(deficit.sum())
        self.revenue += float(penalty.sum())  # the vault keeps the penalty: income
        self.liquidated_usd_step += float(size.sum()) * self.spot
        self._close(slots)
        return LiquidationOutcome(bad_debt_usd=deficit)

    def hedge_orders(self) -> dict[str, float]:
        """Units to sell (+) or buy (-) to bring net delta to zero, when the schedule says.

        Scheduled: the first cascade round of every ``hedge_every_steps``-th step. Drift:
        any round in which ``|net delta| x spot`` exceeds ``delta_band`` x equity, so
        hedging keeps trading as a cascade moves the price. Orders are capped at
        ``max_hedge_pool_share`` of the pool, purchases also by cash.
        """
        p, step = self.params, self.world.step_index
        net = self.net_delta()
        scheduled = p.hedge_every_steps > 0 and step % p.hedge_every_steps == 0
        scheduled &= self._last_hedge_step != step
        band = p.delta_band * max(self.equity(), 0.0)
        drifted = p.delta_band > 0 and abs(net) * self.spot > band
        if not (scheduled or drifted):
            return {}
        self._last_hedge_step = step
        cap = p.max_hedge_pool_share * self.world.pool_units(self.asset)
        order = min(max(net, -cap), cap)
        if order < 0:  # buying needs cash that is not accounts' margin
            budget = max(self.cash - self.marks().margins, 0.0)
            order = max(order, -budget / (1.05 * self.world.pool_price(self.asset)))
        return {self.asset: order} if abs(order) > 1e-9 else {}

    def on_hedge_fill(self, asset: str, units: float, usd: float) -> None:
        """Book a filled hedge: ``units`` received (signed) for ``usd`` received (signed)."""
        self.units += units
        self.cash += usd
        self.hedged_usd_step += abs(usd)

    # -- observation -------------------------------------------------------------------
    def feature_values(self) -> dict[str, float]:
        """Balance-sheet ratios and parameters for the observation vector."""
        assets = max(self.total_assets(), 1.0)
        mk = self.marks()
        equity = self.equity()
        return {
            "equity_to_assets": equity / assets,
            "cash_to_assets": self.available_cash() / assets,
            "utilization": self.required_capital() / max(equity, 1.0),
            "liquidity_shortfall": self.liquidity_shortfall / assets,
            "reserves_to_assets": (equity - self.required_capital()) / assets,
            "bad_debt_to_assets": self.realised_bad_debt / assets,
            "risk_parameter": self.margin_multiplier,
            "price_parameter": self.markup,
            "open_interest_to_assets": float(np.abs(mk.quantity).sum()) * self.spot / assets,
            "liquidated_to_assets": self.liquidated_usd_step / assets,
            "credit_lent_to_assets": self.credit_lent / assets,
            "credit_borrowed_to_assets": self.credit_borrowed / assets,
        }
