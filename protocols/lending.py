"""An Aave-v3-like lending pool: USD deposits, loans against crypto collateral.

Each collateral asset has its own position book (struct-of-arrays) with a liquidation
index. Debt is stored *scaled* by a pool-wide borrow index (as Aave stores it), so
interest accrual is O(1) per step and the liquidation ordering never changes with it:
a position is liquidatable when ``collateral * price * LT < scaled_debt * index``, i.e.
when its key ``scaled_debt / collateral`` exceeds ``price * LT / index``.
"""

from __future__ import annotations

import mesa
import numpy as np

from liqnet.protocols import lending_churn
from liqnet.protocols.base import (
    LiquidationOffer,
    LiquidationOutcome,
    Protocol,
    bounded_step,
)
from liqnet.protocols.flows import (
    TreasuryReads,
    churn_then_flows,
    lendable_usd,
    needed_usd,
    recovery_ratio,
    run_flows,
)
from liqnet.protocols.lending_book import BOOK_FIELDS, LendingBook
from liqnet.protocols.lending_liquidation import liquidation_terms
from liqnet.protocols.lending_params import (
    LendingParams,
)
from liqnet.protocols.rates import KinkedRateModel

_DAYS_PER_YEAR = 365.0


def _utilization(total_debt: float, deposits: float) -> float:
    """Borrowed / deposits, in [0, 1] (1 when nothing is deposited)."""
    return min(1.0, total_debt / deposits) if deposits > 0 else 1.0


class LendingPool(Protocol[LendingParams]):
    """Aave-v3-like pool lending USD against one or more collateral assets.

    Balance sheet: cash + loans (at most their collateral value) - deposits. Deposits
    grow with the supply rate, loans with the borrow rate; the difference (the reserve
    factor's share) is the pool's equity income. Bad debt - loan left after all its
    collateral is gone - is recognised against reserves.
    """

    type_name = "lending"
    Params = LendingParams

    def __init__(self, model: mesa.Model, protocol_id: str, params: LendingParams) -> None:
        super().__init__(model, protocol_id, params)
        p = params
        assets = self.world.asset_names
        unknown = sorted(set(p.collateral) - set(assets))
        if unknown:
            raise ValueError(
                f"protocol {protocol_id!r}: collateral assets {unknown} are not market assets "
                f"(allowed: {list(assets)})"
            )
        self.rate_model = KinkedRateModel(**p.rate_model.model_dump())
        self.base_slopes = (p.rate_model.slope1, p.rate_model.slope2)
        self.slope_multiplier = 1.0
        self.borrow_index = 1.0
        self.liquidity_index = 1.0
        self.scaled_deposits = p.deposits_usd
        self.reserves = p.reserves_usd
        self._shortfall_key: list[float] = []
        self._shortfall = 0.0
        stack = self.world.position_stack("lending.books", BOOK_FIELDS)
        self.books = {a: LendingBook(a, c, stack) for a, c in p.collateral.items()}
        total_share = sum(c.share for c in p.collateral.values())
        self.collateral_shares = {a: c.share / total_share for a, c in p.collateral.items()}
        """Each collateral's share of new loans (its ``share`` normalised), by asset."""
        # The books in order, as a tuple: the balance-sheet sums below run many times a
        # step, and iterating a tuple beats a dict view plus a generator.
        self._book_items = tuple(self.books.items())
        self.reference_rate = self.rate_model.borrow_rate(p.utilization)
        self.health_factors = p.health_factors()  # opening health factors' distribution
        self._seed_positions(self.world.rng_for(f"protocol:{protocol_id}:init"))

    # -- set-up ------------------------------------------------------------------------
    def _draw_positions(
        self, rng: np.random.Generator, n: int, debt_usd: np.ndarray | None, asset: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Collateral units and USD debts of ``n`` new positions with random health."""
        p = self.params
        book = self.books[asset]
        if debt_usd is None:
            mean_debt = p.deposits_usd * p.utilization / p.positions
            debt_usd = mean_debt * rng.lognormal(
                -0.5 * p.position_size_dispersion**2, p.position_size_dispersion, n
            )
        # (The default lognormal draws 1 + lognormal(log(median - 1), dispersion).)
        health = self.health_factors.sample(rng, n, floor=1.0)
        # Positions never open above max LTV: health factor >= LT / LTV at opening.
        health = np.maximum(health, book.liquidation_threshold / book.ltv)
        price = self.world.oracle_prices[asset]
        collateral = debt_usd * health / (book.liquidation_threshold * price)
        return collateral, debt_usd

    def _seed_positions(self, rng: np.random.Generator) -> None:
        p = self.params
        shares = np.array([c.share for c in p.collateral.values()])
        counts = np.maximum(1, np.round(p.positions * shares / shares.sum()).astype(int))
        total_debt = p.deposits_usd * p.utilization
        for (asset, book), count, share in zip(
            self.books.items(), counts, shares / shares.sum(), strict=True
        ):
            weights = rng.lognormal(0.0, p.position_size_dispersion, count)
            debt = total_debt * share * weights / weights.sum()
            collateral, debt = self._draw_positions(rng, count, debt, asset)
            book.add(collateral, debt, mark=False)  # borrow index starts at 1; sorted below
        world = self.world
        # (In this order the opening cash is (deposits - debt) + reserves, as before.)
        world.transfer("depositors", self, usd=p.deposits_usd)
        world.transfer(self, "borrowers", usd=total_debt)
        world.transfer("depositors", self, usd=p.reserves_usd)
        for asset, book in self.books.items():
            world.transfer("borrowers", self, asset=asset, units=book.total_collateral)
        for book in self.books.values():
            book.index.rebuild(full=True)

    # -- balance sheet -----------------------------------------------------------------
    @property
    def deposits(self) -> float:
        """USD owed to depositors."""
        return self.scaled_deposits * self.liquidity_index

    def total_debt(self) -> float:
        """USD owed by borrowers (face value)."""
        scaled = 0.0
        for _, book in self._book_items:
            scaled += book.total_scaled_debt
        return self.borrow_index * scaled

    def utilization(self) -> float:
        """Borrowed / deposits, in [0, 1]."""
        return _utilization(self.total_debt(), self.deposits)

    def underwater_shortfall(self) -> float:
        """USD by which debt exceeds collateral value, summed over underwater loans.

        Cached on (prices, borrow index, book versions): the world asks for equity
        several times a step and nothing changes in between.
        """
        prices = self.world.oracle_prices
        cache_key = [self.borrow_index]
        for asset, book in self._book_items:
            cache_key += (prices[asset], book.index.version)
        if cache_key != self._shortfall_key:
            self._shortfall_key = cache_key
            self._shortfall = self._compute_shortfall()
        return self._shortfall

    def _compute_shortfall(self) -> float:
        shortfall = 0.0
        for asset, book in self.books.items():
            price = self.world.oracle_prices[asset]
            sums = book.index.tail_sums(price / self.borrow_index, above=True)
            shortfall += self.borrow_index * sums["scaled_debt"] - price * sums["collateral"]
        return max(0.0, shortfall)

    def unrealised_losses(self) -> float:
        """The underwater shortfall: losses carried but not yet written off."""
        return self.underwater_shortfall()

    def treasury_value(self) -> float:
        """USD value of the collateral the pool owns (liquidation protocol fees)."""
        prices = self.world.oracle_prices
        value = 0.0
        for asset, book in self._book_items:
            value += book.treasury_units * prices[asset]
        return value

    def own_equity(self) -> float:
        """Cash + loans (capped by collateral) + treasury collateral - deposits."""
        return self._own_equity_at(self.total_debt(), self.underwater_shortfall(), self.deposits)

    def _own_equity_at(self, total_debt: float, shortfall: float, deposits: float) -> float:
        """:meth:`own_equity` from the debt, shortfall and deposits the caller has read."""
        return self.cash + (total_debt - shortfall) + self.treasury_value() - deposits

    def total_assets(self) -> float:
        """Cash plus loans at face value plus treasury collateral."""
        return self.cash + self.total_debt() + self.treasury_value()

    def held_units(self) -> dict[str, float]:
        """Collateral held (borrowers' and the treasury's), per asset."""
        return {a: b.total_collateral + b.treasury_units for a, b in self.books.items()}

    def liquidity_buffer_usd(self) -> float:
        """``liquidity_buffer`` x deposits: the cash kept for withdrawals."""
        return self.params.liquidity_buffer * self.deposits

    def idle_liquidity(self) -> float:
        """Cash above the liquidity buffer kept for depositors."""
        return max(0.0, self.cash - self.liquidity_buffer_usd())

    def supply_rate(self) -> float:
        """Annual rate depositors earn now: borrow rate x utilization x (1 - reserve factor)."""
        return self._supply_rate_at(self.utilization())

    def _supply_rate_at(self, utilization: float) -> float:
        rate = self.rate_model.borrow_rate(utilization)
        return rate * utilization * (1.0 - self.params.reserve_factor)

    def funding_rate(self) -> float:
        """What the pool pays for cash: its depositors' supply rate."""
        return self.supply_rate()

    def treasury_reads(self, days: float, maturing_usd: float = 0.0) -> TreasuryReads:
        """:meth:`Protocol.treasury_reads`, the deposits, debt and outflows read once."""
        deposits = self.deposits
        buffer = self.params.liquidity_buffer * deposits
        idle = max(0.0, self.cash - buffer)
        outflows = self.projected_outflows(days)
        cash = max(0.0, self.cash)
        return TreasuryReads(
            self._supply_rate_at(_utilization(self.total_debt(), deposits)),
            lendable_usd(idle, outflows, maturing_usd),
            idle,
            needed_usd(self.liquidity_shortfall, buffer, outflows, maturing_usd, cash),
            cash,
        )

    # -- levers ------------------------------------------------------------------------
    def apply_levers(self, levers: np.ndarray) -> None:
        """``risk`` moves every LT (and LTV with it); ``price`` scales the rate slopes.

        ``risk > 0`` tightens: lower thresholds mean more collateral per dollar of debt.
        """
        p = self.params
        lower, upper = p.liquidation_threshold_bounds
        for book in self.books.values():
            new_lt = bounded_step(book.liquidation_threshold, -levers[0], p.risk_step, lower, upper)
            new_lt = min(new_lt, 0.999 / (1.0 + book.bonus))
            book.ltv += new_lt - book.liquidation_threshold
            book.liquidation_threshold = new_lt
        self.slope_multiplier = bounded_step(
            self.slope_multiplier, levers[1], p.price_step, *p.slope_multiplier_bounds
        )
        self.rate_model.slope1 = self.base_slopes[0] * self.slope_multiplier
        self.rate_model.slope2 = self.base_slopes[1] * self.slope_multiplier

    # -- accrual and users -------------------------------------------------------------
    def accrue(self, dt_years: float) -> None:
        """Grow debt at the borrow rate and deposits at the supply rate."""
        borrow_rate = self.rate_model.borrow_rate(self.utilization())
        supply_rate = self.supply_rate()
        debt_before = self.total_debt()
        deposits_before = self.deposits
        self.borrow_index *= 1.0 + borrow_rate * dt_years
        self.liquidity_index *= 1.0 + supply_rate * dt_years
        income = (self.total_debt() - debt_before) - (self.deposits - deposits_before)
        self.reserves += income
        self.revenue += income

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Borrowers repay and open loans; depositors deposit and withdraw (runs)."""
        days = dt_years * _DAYS_PER_YEAR
        churn = self.churn_days(days, self.params.churn_interval_hours)
        if churn:
            self._borrowers_act(churn, rng)
        self._depositors_act(days)

    # Every pool's churn as one array program, then each one's flows.
    act_users_stacked = churn_then_flows(
        lending_churn.borrower_churn, lambda pool, days: pool._depositors_act_stacked(days)
    )

    def _borrowers_act(self, days: float, rng: np.random.Generator) -> None:
        """This pool's borrower churn (:func:`lending_churn.borrower_churn` of one)."""
        lending_churn.borrower_churn([self], [days], [rng])

    def _depositors_act(self, days: float) -> None:
        deposits = self.deposits
        if deposits <= 0:
            return
        # equity() (not the pool's own terms) so subclasses' extra assets count too.
        args = (self.utilization(), self.underwater_shortfall(), self.equity())
        self._serve_depositors(days, deposits, *args)

    def _depositors_act_stacked(self, days: float) -> None:
        """:meth:`_depositors_act` of a pool of a stacked type (exactly ``LendingPool``
        or ``CometPool``, so no override to respect): each balance-sheet read made once,
        with the same arithmetic."""
        deposits = self.deposits
        if deposits <= 0:
            return
        total_debt, shortfall = self.total_debt(), self.underwater_shortfall()
        equity = self._own_equity_at(total_debt, shortfall, deposits)
        equity = equity + self.credit_lent - self.credit_borrowed
        self._serve_depositors(
            days, deposits, _utilization(total_debt, deposits), shortfall, equity
        )

    def _serve_depositors(
        self, days: float, deposits: float, utilization: float, shortfall: float, equity: float
    ) -> None:
        p = self.params
        opt = self.rate_model.optimal_utilization
        stress = max(0.0, utilization - opt) / (1.0 - opt)
        insolvency = (shortfall + max(0.0, -equity)) / deposits
        # Depositors fear losses (insolvency) far more than high utilisation.
        signal = 0.2 * stress + min(1.0, 20.0 * insolvency)
        # In a wind-down depositors are the senior claim on every asset (loans net of
        # underwater shortfall, cash, credit lent), ahead of other protocols' credit.
        recovery = recovery_ratio(deposits, equity + deposits + self.credit_borrowed)
        inflow, redeemed = run_flows(
            self,
            "depositors",
            deposits,
            signal,
            days,
            p.deposit_turnover_per_day,
            p.run_sensitivity,
            p.risk_memory_days,
            lambda: max(0.0, self.cash),
            recovery=recovery,
        )
        self.scaled_deposits += (inflow - redeemed) / self.liquidity_index

    # -- liquidations ------------------------------------------------------------------
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """Positions with health factor below 1, with Aave's close-factor arithmetic.

        A book whose unhealthy loans are all dust - none could pay any liquidator's gas
        and minimum profit, even at the pool price - offers nothing.
        """
        offers = []
        for asset, book in self.books.items():
            price = self.world.oracle_prices[asset]
            lt = book.liquidation_threshold
            slots = book.index.select(price * lt / self.borrow_index, above=True)
            if slots.size == 0:
                continue
            debt = book.positions["scaled_debt"][slots] * self.borrow_index
            collateral = book.positions["collateral"][slots]
            # A liquidator's value is repay * ((1 + bonus * (1 - fee)) * pool / oracle - 1),
            # repay at most the debt and the collateral's value net of the bonus. When no
            # loan can pay any liquidator's hurdle, all of it is dust no one takes, and
            # offering it would cost more than this check.
            net_bonus = book.bonus * (1.0 - book.protocol_fee)
            pool_premium = (1.0 + net_bonus) * self.world.pool_price(asset) / price - 1.0
            largest_repay = np.minimum(debt, collateral * (price / (1.0 + book.bonus))).max()
            # (The 1e-9 margin keeps round-off from dropping a loan right at the hurdle.)
            if largest_repay * pool_premium < self.world.liquidation_hurdle_usd - 1e-9:
                continue
            args = (collateral, debt, price, lt, book.bonus, book.protocol_fee)
            repay, _, units, fee, cap = liquidation_terms(self.params, *args)
            zero = np.zeros(slots.size)
            offers.append(LiquidationOffer(self, asset, asset, slots, repay, units, zero, fee, cap))
        return offers

    def liquidation_amounts(
        self,
        collateral: np.ndarray,
        debt: np.ndarray,
        price: float,
        liquidation_threshold: float,
        bonus: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Debt a liquidator may repay and collateral the borrower loses (Aave v3 rules).

        Collateral seized = repaid * (1 + bonus) / price, capped by the collateral (then
        the repayment shrinks to match); the close factor follows ``close_factor_rule``
        (:func:`~liqnet.protocols.lending_liquidation.liquidation_terms` has the split).
        """
        args = (collateral, debt, price, liquidation_threshold, bonus, 0.0)
        terms = liquidation_terms(self.params, *args)
        return terms.repay_usd, terms.seize_units

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Reduce debt and collateral; loans left with no collateral become bad debt.

        The offer's amounts are what is executed (a partial fill arrives scaled). The
        liquidation protocol fee (``fee_units``) leaves the position into the pool's
        treasury and is booked as revenue at the oracle price (Aave v3 LiquidationLogic:
        ``transferOnLiquidation`` to ``RESERVE_TREASURY_ADDRESS``).
        """
        book = self.books[offer.book]
        slots = offer.slots[accepted]
        repay, seize = offer.repay_usd[accepted], offer.seize_units[accepted]
        fee = np.zeros(slots.size) if offer.fee_units is None else offer.fee_units[accepted]
        taken = seize + fee
        columns = book.positions.columns
        held = columns["collateral"][slots]
        debt = columns["scaled_debt"][slots] - repay / self.borrow_index
        collateral = held - taken
        columns["scaled_debt"][slots] = debt
        columns["collateral"][slots] = collateral
        repaid = float(repay.sum())
        book.total_scaled_debt -= repaid / self.borrow_index
        book.total_collateral -= float(taken.sum())
        fee_units = float(fee.sum())
        book.treasury_units += fee_units
        fee_usd = fee_units * self.world.oracle_prices[book.asset]
        self.revenue += fee_usd
        self.reserves += fee_usd
        self.cash += repaid
        self.liquidated_usd_step += repaid
        # Dust collateral left after a full seizure (possibly in parts) counts as none.
        exhausted = collateral <= 1e-12 * np.maximum(held, 1e-300)
        debt_usd = debt * self.borrow_index
        bad_debt = np.maximum(np.where(exhausted, debt_usd, 0.0), 0.0)
        done = slots[exhausted | (debt_usd <= 1e-9)]
        if bad_debt.any():
            self.recognise_bad_debt(float(bad_debt.sum()))
        # A fully repaid loan hands its leftover collateral back to the borrower; a
        # written-off loan (an asset) disappears with its dust.
        left = float(columns["collateral"][done].sum())
        self.world.transfer(self, "borrowers", asset=book.asset, units=left)
        book.close(done, mark=False)
        book.index.mark_dirty(slots)  # one update for all (the closed ones are among them)
        return LiquidationOutcome(bad_debt_usd=bad_debt)

    def recognise_bad_debt(self, amount: float) -> None:
        """Write off ``amount`` of loans against reserves."""
        self.realised_bad_debt += amount
        self.reserves -= amount

    # -- observation -------------------------------------------------------------------
    def feature_values(self) -> dict[str, float]:
        """Balance-sheet ratios and parameters for the observation vector."""
        assets = max(self.total_assets(), 1.0)
        lts = [b.liquidation_threshold for b in self.books.values()]
        return {
            "equity_to_assets": self.equity() / assets,
            "cash_to_assets": self.cash / assets,
            "utilization": self.utilization(),
            "liquidity_shortfall": self.liquidity_shortfall / assets,
            "reserves_to_assets": self.reserves / assets,
            "bad_debt_to_assets": self.realised_bad_debt / assets,
            "risk_parameter": sum(lts) / len(lts),
            "price_parameter": self.slope_multiplier,
            "liquidated_to_assets": self.liquidated_usd_step / assets,
            "credit_lent_to_assets": self.credit_lent / assets,
            "credit_borrowed_to_assets": self.credit_borrowed / assets,
        }
