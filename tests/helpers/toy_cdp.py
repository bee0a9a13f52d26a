"""A minimal auctioning protocol for the keeper tests: vaults of ETH owing a stablecoin.

Test-only (the real CDP is ``liqnet.protocols.cdp``): it holds its vaults' collateral,
mints their debt to the borrowers, barks every vault whose collateral is worth less than
``mat`` x its debt at the oracle, and books the keepers' fills -- enough to drive the
auction phase and check conservation, prices and zero bids.
"""

from __future__ import annotations

import mesa
import numpy as np
from pydantic import Field

from liqnet.protocols.auctions import AuctionBook, AuctionFills, AuctionParams, EnglishAuctionParams
from liqnet.protocols.base import LiquidationOffer, LiquidationOutcome, Protocol, ProtocolParams
from liqnet.protocols.registry import register


class ToyCdpParams(ProtocolParams):
    """Vault book and auction settings of the toy CDP."""

    stablecoin: str = "DAI"
    asset: str = "ETH"
    vaults: int = Field(10, ge=1, le=10_000)
    ink: float = Field(10.0, gt=0.0, le=1e6)
    debt: float = Field(15_000.0, gt=0.0, le=1e9)
    mat: float = Field(1.5, ge=1.0, le=10.0)
    penalty: float = Field(0.13, ge=0.0, le=1.0)
    auction: AuctionParams = Field(default_factory=EnglishAuctionParams)

    def referenced_assets(self) -> list[str]:
        return [self.stablecoin, self.asset]


class ToyCdp(Protocol[ToyCdpParams]):
    """Vaults lock ``ink`` ETH each and owe ``debt`` stable units; liquidation by auction."""

    type_name = "toy_cdp"
    Params = ToyCdpParams

    def __init__(self, model: mesa.Model, protocol_id: str, params: ToyCdpParams) -> None:
        super().__init__(model, protocol_id, params)
        p = params
        self.ink = np.full(p.vaults, p.ink)
        self.art = np.full(p.vaults, p.debt)
        self.outstanding = float(self.art.sum())
        self.bad_debt = 0.0
        self.penalties = 0.0
        self.auction_book = AuctionBook((p.asset,), p.auction)
        self.world.transfer("borrowers", self, asset=p.asset, units=float(self.ink.sum()))
        self.world.transfer(self, "borrowers", asset=p.stablecoin, units=self.outstanding)

    def held_units(self) -> dict[str, float]:
        book = self.auction_book
        assert book is not None
        locked = book.locked_units()[self.params.asset]
        return {
            self.params.asset: float(self.ink.sum()) + locked,
            self.params.stablecoin: -self.outstanding,
        }

    def own_equity(self) -> float:
        return self.cash - self.bad_debt + self.penalties

    def total_assets(self) -> float:
        return float(self.art.sum())

    def apply_levers(self, levers: np.ndarray) -> None:
        pass

    def accrue(self, dt_years: float) -> None:
        pass

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        pass

    def liquidation_candidates(self) -> list[LiquidationOffer]:
        return []

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        raise AssertionError("the toy CDP liquidates by auction only")

    def idle_liquidity(self) -> float:
        return 0.0

    def feature_values(self) -> dict[str, float]:
        return {}

    def bark(self) -> int:
        price = self.world.oracle_prices[self.params.asset]
        unsafe = np.flatnonzero((self.art > 0) & (self.ink * price < self.art * self.params.mat))
        if unsafe.size:
            assert self.auction_book is not None
            self.auction_book.kick(
                asset=self.params.asset,
                lot=self.ink[unsafe],
                tab=self.art[unsafe] * (1 + self.params.penalty),
                debt=self.art[unsafe],
                slot=unsafe,
                now=self.world.step_index * self.world.dt_hours,
                oracle_price=price,
            )
            self.ink[unsafe] = 0.0
            self.art[unsafe] = 0.0
        return int(unsafe.size)

    def settle_auctions(self, fills: AuctionFills) -> None:
        self.outstanding -= fills.stable_in - fills.incentives
        self.bad_debt += float(fills.shortfall.sum())
        self.penalties += float(fills.surplus.sum())


register("toy_cdp", ToyCdp)
