"""A Compound-v3 ("Comet") lending market: liquidation by ``absorb`` and ``buyCollateral``.

Everything but liquidation is the lending pool's (USD deposits, loans against crypto
collateral, a kinked rate curve, the liquidation index). Liquidation follows
compound-finance/comet ``contracts/Comet.sol``:

- ``isLiquidatable``: an account is liquidatable when its borrow balance exceeds
  ``liquidateCollateralFactor x`` its collateral value (the index search of the pool).
- ``absorbInternal``: anyone may absorb such an account. The protocol takes *all* its
  collateral onto its own balance sheet and wipes its debt; the account is credited
  ``liquidationFactor x`` the collateral value. Credit above the debt becomes the
  account's base (USD) supply balance, a deposit; debt above the credit is paid by the
  reserves. Reserves (``getReserves``: base held minus supplied plus borrowed) fall by
  ``max(debt, credit)``. The absorber gets no bonus: ``absorb`` only records liquidator
  points (gas spent) for governance to reimburse; here that refund is paid in cash, the
  smallest amount some liquidator accepts (its gas plus its minimum profit), and only
  as many absorbs are offered as the market's cash can refund (most underwater first).
- ``buyCollateral`` / ``quoteCollateral``: while reserves are below ``targetReserves``
  anyone may buy the absorbed collateral at the oracle price times
  ``1 - storeFrontPriceFactor x (1 - liquidationFactor)``; each sale adds its price to
  the reserves. The buyers are the world's liquidators, who take the lots that pay
  after selling them on the AMM pool (the cascade's ordinary offer and sale path).

Parameters default to the cUSDCv3 mainnet market (compound-finance/comet
``deployments/mainnet/usdc/configuration.json``): WETH borrowCF 0.82, liquidateCF 0.90,
liquidationFactor 0.95; storeFrontPriceFactor 0.5; targetReserves 5,000,000 USDC.
"""

from __future__ import annotations

import math

import mesa
import numpy as np
from pydantic import Field

from liqnet.protocols.base import LiquidationOffer, LiquidationOutcome
from liqnet.protocols.lending import LendingPool
from liqnet.protocols.lending_params import CollateralParams, LendingParams

STORE_SUFFIX = "/buyCollateral"
"""Book name suffix of the store-front offers (``"ETH/buyCollateral"``) in the event log."""

_NO_SLOT = -1  # store-front lots are protocol inventory, not positions


class CometCollateralParams(CollateralParams):
    """One collateral asset of a Comet market (defaults: cUSDCv3 WETH).

    ``ltv`` is Comet's borrowCollateralFactor, ``liquidation_threshold`` its
    liquidateCollateralFactor. ``liquidation_bonus`` is unused: absorb pays no bonus.
    """

    ltv: float = Field(0.82, ge=0.01, lt=1.0, description="borrowCollateralFactor")
    liquidation_threshold: float = Field(
        0.90, gt=0.0, lt=1.0, description="liquidateCollateralFactor"
    )
    liquidation_bonus: float = Field(0.0, ge=0.0, le=0.25, description="unused by absorb")
    liquidation_factor: float = Field(
        0.95, gt=0.0, le=1.0, description="share of collateral value credited on absorb"
    )


class CometParams(LendingParams):
    """Parameters of a :class:`CometPool` (the lending pool's, plus Comet's storefront).

    The Aave close-factor fields inherited from the lending pool are unused.
    """

    collateral: dict[str, CometCollateralParams] = Field(  # type: ignore[assignment]
        default_factory=lambda: {"ETH": CometCollateralParams()}, min_length=1
    )
    store_front_price_factor: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the liquidation penalty given to buyers"
    )
    target_reserves_usd: float = Field(
        5e6,
        ge=0.0,
        le=1e13,
        description="collateral is for sale only while reserves are below this",
    )
    store_lot_usd: float = Field(
        250e3, ge=1.0, le=1e13, description="size of one buyCollateral call offered to buyers"
    )
    max_store_lots: int = Field(64, ge=1, le=10_000, description="lots offered per round")


class CometPool(LendingPool):
    """Compound-v3 market: liquidators absorb underwater accounts, then buy the collateral.

    Balance sheet: the lending pool's plus the absorbed collateral it holds
    (``inventory``, marked at oracle prices) until buyers take it.
    """

    type_name = "comet"
    Params = CometParams  # type: ignore[assignment]  # strict __init__: collateral type narrows
    params: CometParams
    # Its borrowers and depositors act as a lending pool's: stacked the same way (its own
    # stack call, since the world stacks by exact type).
    act_users_stacked = LendingPool.__dict__["act_users_stacked"]
    treasury_reads = LendingPool.treasury_reads  # it overrides none of the reads it fuses

    def __init__(self, model: mesa.Model, protocol_id: str, params: CometParams) -> None:
        super().__init__(model, protocol_id, params)
        self.inventory = dict.fromkeys(self.books, 0.0)  # absorbed collateral units
        self.absorbed_loss_usd = 0.0  # debt above the credit, paid by reserves (cumulative)

    # -- Comet's formulas --------------------------------------------------------------
    def liquidation_factor(self, asset: str) -> float:
        """Share of collateral value credited to an absorbed account."""
        return self.params.collateral[asset].liquidation_factor

    def store_front_price(self, asset: str) -> float:
        """USD per unit a buyer pays (Comet.quoteCollateral's discounted price).

        discountFactor = storeFrontPriceFactor * (1 - liquidationFactor);
        price = oracle price * (1 - discountFactor).
        """
        discount = self.params.store_front_price_factor * (1.0 - self.liquidation_factor(asset))
        return self.world.oracle_prices[asset] * (1.0 - discount)

    def absorb_amounts(
        self, collateral: np.ndarray, debt: np.ndarray, price: float, liquidation_factor: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Credit, the excess credited as a deposit, and the reserves' loss, per account.

        Comet.absorbInternal: deltaValue = collateral value * liquidationFactor; the new
        balance is -debt + deltaValue, floored at 0 ("all excess debt absorbed by
        reserves").
        """
        credit = collateral * price * liquidation_factor
        return credit, np.maximum(credit - debt, 0.0), np.maximum(debt - credit, 0.0)

    # -- balance sheet -----------------------------------------------------------------
    def inventory_value(self) -> float:
        """Absorbed collateral held, at oracle prices."""
        prices = self.world.oracle_prices
        return sum(units * prices[a] for a, units in self.inventory.items())

    def _own_equity_at(self, total_debt: float, shortfall: float, deposits: float) -> float:
        """The pool's equity plus the absorbed collateral it holds."""
        return super()._own_equity_at(total_debt, shortfall, deposits) + self.inventory_value()

    def total_assets(self) -> float:
        """Cash, loans at face value and absorbed collateral."""
        return super().total_assets() + self.inventory_value()

    def held_units(self) -> dict[str, float]:
        """Collateral of open loans plus absorbed collateral, per asset."""
        return {a: b.total_collateral + self.inventory[a] for a, b in self.books.items()}

    # -- liquidations ------------------------------------------------------------------
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """Absorbable accounts (keeper work for a gas refund), then the store front."""
        offers = []
        # (The margin keeps round-off from refusing a refund equal to the hurdle.)
        refund = self.world.liquidation_hurdle_usd * (1.0 + 1e-9) + 1e-9
        # The refunds are paid from cash: a market its depositors have emptied cannot pay
        # for more absorbs than its cash covers (a pool's cash never goes negative), and
        # the most underwater accounts, whose losses grow fastest, go first.
        budget = max(self.cash, 0.0)
        for asset, book in self.books.items():
            price = self.world.oracle_prices[asset]
            slots = book.index.select(
                price * book.liquidation_threshold / self.borrow_index, above=True
            )
            if not (slots.size and math.isfinite(refund)):
                continue
            affordable = min(slots.size, int(budget // refund))
            if not affordable:
                continue
            if affordable < slots.size:
                keys = book.index.key(slots)
                slots = slots[np.argsort(-keys, kind="stable")[:affordable]]
            budget -= affordable * refund
            zeros = np.zeros(affordable)
            reward = np.full(affordable, refund)
            offers.append(LiquidationOffer(self, asset, asset, slots, zeros, zeros, reward))
        offers.extend(o for a in self.books if (o := self._store_offer(a)) is not None)
        return offers

    def _store_offer(self, asset: str) -> LiquidationOffer | None:
        """The absorbed ``asset`` for sale in lots, while reserves are below target.

        Comet.buyCollateral reverts with NotForSale once reserves >= targetReserves; a
        lot is offered only if the reserves before it (the lots ahead of it sold) are
        still below the target.
        """
        units = self.inventory[asset]
        target = self.params.target_reserves_usd
        if units <= 0.0 or self.reserves >= target:
            return None
        price = self.store_front_price(asset)
        # Dust no buyer would take even at the marginal pool price is not offered.
        if units * (self.world.pool_price(asset) - price) < self.world.liquidation_hurdle_usd:
            return None
        lots = math.ceil(units * price / self.params.store_lot_usd)
        count = min(self.params.max_store_lots, lots)
        lot_units = np.full(count, units / count)
        lot_usd = lot_units * price
        open_lots = int(np.count_nonzero(self.reserves + np.cumsum(lot_usd) - lot_usd < target))
        slots = np.full(open_lots, _NO_SLOT, dtype=np.int64)
        return LiquidationOffer(
            self,
            asset + STORE_SUFFIX,
            asset,
            slots,
            lot_usd[:open_lots],
            lot_units[:open_lots],
            np.zeros(open_lots),
        )

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Absorb the accepted accounts, or sell the accepted store-front lots."""
        if offer.book.endswith(STORE_SUFFIX):
            return self._buy_collateral(offer, accepted)
        return self._absorb(offer, accepted)

    def _absorb(self, offer: LiquidationOffer, accepted: np.ndarray) -> LiquidationOutcome:
        """Comet.absorbInternal over the accepted accounts (one array operation)."""
        book = self.books[offer.book]
        slots = offer.slots[accepted]
        columns = book.positions.columns
        debt = columns["scaled_debt"][slots] * self.borrow_index
        collateral = columns["collateral"][slots]
        price = self.world.oracle_prices[book.asset]
        credit, excess, loss = self.absorb_amounts(
            collateral, debt, price, self.liquidation_factor(book.asset)
        )
        # The collateral moves from the account to the protocol (units stay in held_units).
        seized = float(collateral.sum())
        book.close(slots, mark=False)
        book.index.mark_dirty(slots)
        self.inventory[book.asset] += seized
        # Excess credit becomes the account's base supply balance (totalSupplyBase grows).
        self.scaled_deposits += float(excess.sum()) / self.liquidity_index
        # getReserves falls by max(debt, credit): the credit buys the collateral, and the
        # debt above it is the reserves' loss.
        total_loss = float(loss.sum())
        self.reserves -= float(credit.sum()) + total_loss
        self.absorbed_loss_usd += total_loss
        # Debt no collateral covers at the oracle price is bad debt, as in the pool.
        bad_debt = np.maximum(debt - collateral * price, 0.0)
        self.realised_bad_debt += float(bad_debt.sum())
        # The absorber's gas refund: the world pays it out of the protocol's cash. (A cost,
        # in reserves and equity; revenue counts income only.)
        refund = float(offer.reward_usd[accepted].sum())
        self.cash -= refund
        self.reserves -= refund
        self.liquidated_usd_step += float(debt.sum())
        return LiquidationOutcome(
            bad_debt_usd=bad_debt,
            extra={"credit_usd": credit, "excess_usd": excess, "reserves_loss_usd": loss},
        )

    def _buy_collateral(self, offer: LiquidationOffer, accepted: np.ndarray) -> LiquidationOutcome:
        """Comet.buyCollateral for the accepted lots: base in, collateral out."""
        asset = offer.asset
        paid = float(offer.repay_usd[accepted].sum())
        units = float(offer.seize_units[accepted].sum())
        self.inventory[asset] -= units
        self.cash += paid
        self.reserves += paid
        # Revenue: the part of the liquidation penalty buyers do not get, (1 - SF) x
        # (1 - LF) of the value at today's price. The price move since the absorb is the
        # inventory's gain or loss, already in equity, not income.
        value = units * self.world.oracle_prices[asset]
        self.revenue += paid - value * self.liquidation_factor(asset)
        return LiquidationOutcome(bad_debt_usd=np.zeros(int(accepted.sum())))
