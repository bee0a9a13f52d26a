"""Parameters of the CDP protocol (MakerDAO-like), validated from scenario files.

Names follow makerdao/dss (``src/vat.sol``, ``jug.sol``, ``cat.sol``, ``dog.sol``,
``vow.sol``, ``flop.sol``) with the Maker field in each description. Defaults are ETH-A of
March 2020 where a source gives them; the rest are chosen and say so (see the module
docstring of :mod:`liqnet.protocols.cdp`).
"""

from __future__ import annotations

import pydantic
from pydantic import Field

from liqnet.core.schema import MAX_MULTIPLIER, MAX_POSITIONS, MAX_USD, MIN_USD
from liqnet.protocols.auctions import AuctionParams, EnglishAuctionParams
from liqnet.protocols.base import ProtocolParams
from liqnet.protocols.distributions import AnyDistribution, Distribution, Lognormal, check_range

SECONDS_PER_YEAR = 365 * 24 * 3600
"""Seconds in Maker's year (jug.sol ``duty`` is a per-second rate; 365-day years)."""


class CdpCollateralParams(ProtocolParams):
    """One collateral type (Maker "ilk"): risk parameters and its share of the book."""

    # ETH-A: liquidation ratio 150% and penalty 13% in March 2020 (spot.sol ``mat``,
    # cat.sol ``chop``; Maker governance, /work/shared/REFERENCE_PARAMETERS.md). Today's
    # ETH-A (Liquidations 2.0, dog.sol) keeps chop 1.13 with mat 1.45.
    liquidation_ratio: float = Field(
        1.5, gt=1.0, le=10.0, description="spot.sol mat: collateral value / debt at liquidation"
    )
    penalty: float = Field(
        0.13, ge=0.0, le=1.0, description="cat.sol / dog.sol chop - 1: added to the debt at bark"
    )
    # jug.sol duty is per second: duty = (1 + stability_fee) ** (1 / SECONDS_PER_YEAR).
    # 4% a year is chosen: the low end of the 4-12% range polled on 24 February 2020
    # (blog.makerdao.com/governance-polls-february-24-2020).
    stability_fee: float = Field(
        0.04, ge=0.0, le=10.0, description="jug.sol duty as an annual rate, compounded"
    )
    debt_ceiling_usd: float = Field(
        150e6, ge=0.0, le=MAX_USD, description="vat.sol line: most debt of this type"
    )
    lump_units: float | None = Field(
        None,
        gt=0.0,
        le=1e12,
        description="cat.sol (2020) lump: most collateral per auction (partial bites); None: all",
    )
    hole_usd: float | None = Field(
        None,
        gt=0.0,
        le=MAX_USD,
        description="dog.sol hole: most tab in open auctions of this type; None: no limit",
    )
    share: float = Field(
        1.0, ge=1e-6, le=MAX_MULTIPLIER, description="share of the book's debt in this type"
    )


class FlopParams(ProtocolParams):
    """The debt auction (vow.sol ``flop`` and flop.sol) and the MKR price-impact rule.

    Rule: MKR's market cap ``M = price x supply`` is held fixed by an issue (the buyers'
    DAI goes to DAI holders, not to MKR holders, so the issue adds no value to spread),
    so the price is diluted, ``p' = M / S'``; and the lot is sold at ``discount`` below
    the market price (dent bidders' margin). Each lot raises ``sump`` DAI for
    ``sump / (p (1 - discount))`` new MKR, so after ``n`` lots
    ``S_n = S_0 (1 + sump / ((1 - discount) M)) ** n``.
    """

    # vow.sol sump / dump: the lots of 19 March 2020 raised 50,000 DAI each, starting at
    # 250 MKR (chosen after the reported lots; flop.sol sets neither).
    sump_usd: float = Field(
        50_000.0, ge=MIN_USD, le=MAX_USD, description="vow.sol sump: DAI raised per lot"
    )
    dump_units: float = Field(
        250.0, gt=0.0, le=1e12, description="vow.sol dump: MKR offered at a lot's start"
    )
    # flop.sol defaults: pad 1.50, ttl 3 hours, tau 2 days (its beg, 5%, is within the
    # discount: bidders undercut each other down to it).
    pad: float = Field(0.5, gt=0.0, le=10.0, description="flop.sol pad - 1: lot increase on tick")
    ttl_hours: float = Field(3.0, gt=0.0, le=720.0, description="flop.sol ttl: bid lifetime")
    tau_hours: float = Field(48.0, gt=0.0, le=720.0, description="flop.sol tau: auction length")
    wait_hours: float = Field(
        48.0, ge=0.0, le=8760.0, description="vow.sol wait: bad debt queued before a flop"
    )
    # MKR: ~1,000,000 supply (the stated cap before March 2020, blockonomi.com on the
    # 19 March flops); ~$250 a token is what the flops realised (20,980 MKR for ~5.3M
    # DAI, Maker post-mortems), so price 300 with a 15% discount is chosen to match.
    mkr_price_usd: float = Field(300.0, ge=1e-8, le=1e8, description="MKR price at the start")
    mkr_supply: float = Field(1e6, ge=1.0, le=1e15, description="MKR tokens at the start")
    discount: float = Field(
        0.15, ge=0.0, lt=1.0, description="share below the MKR price the lots sell at"
    )


class CdpParams(ProtocolParams):
    """Parameters of a :class:`~liqnet.protocols.cdp.CdpProtocol` (``protocols.params``)."""

    stablecoin: str = Field("DAI", min_length=1, description="market asset the CDP mints")
    collateral: dict[str, CdpCollateralParams] = Field(
        default_factory=lambda: {"ETH": CdpCollateralParams()}, min_length=1
    )
    # The vault book (chosen defaults; black_thursday.toml sizes it to March 2020).
    vaults: int = Field(2_000, ge=1, le=MAX_POSITIONS, description="vaults at the start")
    collateral_usd: float = Field(
        300e6, ge=MIN_USD, le=MAX_USD, description="collateral value locked at the start"
    )
    debt_usd: float = Field(100e6, ge=MIN_USD, le=MAX_USD, description="debt (stable) at start")
    ratio_median: float = Field(
        2.0, gt=1.0, le=100.0, description="median opening ratio / liquidation ratio"
    )
    ratio_dispersion: float = Field(0.6, gt=0.0, le=3.0)
    ratio_distribution: Distribution | None = Field(
        None,
        description="opening collateral ratio / liquidation ratio, >= 1 (then scaled to "
        "collateral_usd)",
    )
    position_size_dispersion: float = Field(1.2, ge=0.0, le=4.0)
    vault_turnover_per_day: float = Field(
        0.01, ge=0.0, le=1.0, description="share of vaults closed (and opened) a day"
    )
    churn_interval_hours: float = Field(4.0, ge=1.0 / 60.0, le=168.0)
    # Borrower behaviour (issue 15 item 4; chosen): awake owners whose ratio falls below
    # top_up_trigger x mat restore it to top_up_target x mat, by repaying (repay_share of
    # owners) or adding collateral; asleep owners never act.
    asleep_share: float = Field(0.3, ge=0.0, le=1.0, description="owners who never top up")
    top_up_trigger: float = Field(
        1.1, ge=1.0, le=10.0, description="ratio / mat below which awake owners act"
    )
    top_up_target: float = Field(1.5, ge=1.0, le=10.0, description="ratio / mat they restore")
    repay_share: float = Field(
        0.5, ge=0.0, le=1.0, description="owners who repay debt instead of adding collateral"
    )
    # Repayers buy the stablecoin they repay on its pool (the demand that pushed DAI to
    # $1.06-1.10 in March 2020), paying at most this price; above it they use stablecoin
    # they hold. 1.10 chosen: the top of DAI's range then (REFERENCE_PARAMETERS.md).
    repay_max_price: float = Field(
        1.10, ge=0.0, le=100.0, description="most a repaying owner pays for one stable unit"
    )
    # The surplus buffer (vow.sol): stability fees and penalties accumulate in it; above
    # hump surplus is auctioned for MKR to burn (flap). 500,000 DAI chosen for both.
    surplus_usd: float = Field(
        500_000.0, ge=0.0, le=MAX_USD, description="vow.sol dai: surplus at the start"
    )
    hump_usd: float = Field(
        500_000.0, ge=0.0, le=MAX_USD, description="vow.sol hump: surplus kept before flaps"
    )
    global_hole_usd: float | None = Field(
        None, gt=0.0, le=MAX_USD, description="dog.sol Hole: most tab in all open auctions"
    )
    flop: FlopParams = Field(default_factory=FlopParams)
    # Collateral auctions: English (flip.sol, ETH-A of March 2020) by default, or Dutch
    # (clip.sol, Liquidations 2.0): liqnet.protocols.auctions.
    auction: AuctionParams = Field(default_factory=EnglishAuctionParams)
    risk_step: float = Field(0.01, ge=0.0, le=1.0, description="max liquidation ratio move")
    price_step: float = Field(0.005, ge=0.0, le=1.0, description="max stability fee move")
    liquidation_ratio_bounds: tuple[float, float] = (1.1, 3.0)
    stability_fee_bounds: tuple[float, float] = (0.0, 0.5)

    @pydantic.field_validator("ratio_distribution")
    @classmethod
    def _opening_ratio(cls, dist: AnyDistribution | None) -> AnyDistribution | None:
        if dist is not None:
            why = "opening ratio / liquidation ratio: a vault below 1 would open unsafe"
            check_range(dist, 1.0, MAX_MULTIPLIER, 1.0, why)
        return dist

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> CdpParams:
        shares = sum(c.share for c in self.collateral.values())
        mat = sum(c.liquidation_ratio * c.share for c in self.collateral.values()) / shares
        if self.collateral_usd <= mat * self.debt_usd:
            raise ValueError(
                f"collateral_usd = {self.collateral_usd:g} must exceed the liquidation ratio "
                f"({mat:g}) x debt_usd = {mat * self.debt_usd:g}: no vault may open unsafe"
            )
        if self.surplus_usd > self.debt_usd:
            raise ValueError("surplus_usd must not exceed debt_usd (fees come out of debt)")
        if self.top_up_target < self.top_up_trigger:
            raise ValueError("top_up_target must be at least top_up_trigger")
        if self.stablecoin in self.collateral:
            raise ValueError(f"stablecoin {self.stablecoin!r} cannot be its own collateral")
        for asset, c in self.collateral.items():
            low, high = self.liquidation_ratio_bounds
            if not (1.0 < low <= c.liquidation_ratio <= high):
                raise ValueError(
                    f"liquidation_ratio_bounds = {(low, high)}: must satisfy 1 < low <= "
                    f"collateral.{asset}.liquidation_ratio ({c.liquidation_ratio}) <= high"
                )
            low, high = self.stability_fee_bounds
            if not (0.0 <= low <= c.stability_fee <= high):
                raise ValueError(
                    f"stability_fee_bounds = {(low, high)}: must satisfy 0 <= low <= "
                    f"collateral.{asset}.stability_fee ({c.stability_fee}) <= high"
                )
        return self

    def ratios(self) -> AnyDistribution:
        """Opening collateral ratios over the liquidation ratio (``ratio - 1`` lognormal)."""
        if self.ratio_distribution is not None:
            return self.ratio_distribution
        return Lognormal(median=self.ratio_median, dispersion=self.ratio_dispersion)

    def referenced_assets(self) -> list[str]:
        """The collateral assets and the stablecoin."""
        return [*self.collateral, self.stablecoin]
