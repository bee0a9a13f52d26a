"""The protocol interface every protocol model implements.

A protocol is a balance sheet plus rules. The world (``liqnet.market.MarketModel``) drives
it through the methods below in the step order of the architecture map; the protocol
never sees the environment, Ray or learners.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import mesa
import numpy as np
import pydantic

from liqnet.core.levers import FEATURE_NAMES, LEVER_NAMES
from liqnet.core.schema import reject_bool_numbers
from liqnet.protocols.flows import FlowOutlook, TreasuryReads, lendable_usd, needed_usd
from liqnet.protocols.world import World

if TYPE_CHECKING:
    from liqnet.protocols.auctions import AuctionBook, AuctionFills

__all__ = [
    "FEATURE_NAMES",
    "LEVER_NAMES",
    "LiquidationOffer",
    "LiquidationOutcome",
    "Protocol",
    "ProtocolParams",
    "World",
    "bounded_step",
    "drawdown",
]


def bounded_step(value: float, lever: float, step: float, lower: float, upper: float) -> float:
    """Move ``value`` by ``lever * step`` (lever clipped to [-1, 1]) inside [lower, upper].

    Levers move parameters by bounded increments, never to arbitrary values.
    """
    lever = min(1.0, max(-1.0, float(lever)))
    return min(upper, max(lower, value + lever * step))


def drawdown(value: float, peak: float) -> float:
    """Fall of ``value`` below its running ``peak``, as a share of the peak (1 if no peak)."""
    return max(0.0, 1.0 - value / peak) if peak > 0 else 1.0


class ProtocolParams(pydantic.BaseModel):
    """Base of every protocol's parameter model.

    Unknown fields, infinities, NaN and lax types (strings or booleans as numbers) are
    errors. Subclasses
    that refer to market assets list them in :meth:`referenced_assets`, so scenario
    loading can check them.
    """

    # Strict types as the scenario schema: no string or boolean is read as a number.
    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, strict=True
    )

    _no_bools = pydantic.model_validator(mode="before")(reject_bool_numbers)

    def referenced_assets(self) -> list[str]:
        """Market assets these parameters name (collateral, perp markets, ...)."""
        return []


@dataclass
class LiquidationOffer:
    """Liquidations a protocol offers to liquidators in one cascade round.

    A liquidator that takes entry ``i`` pays ``repay_usd[i]`` to the protocol, receives
    ``seize_units[i]`` of ``asset`` and ``reward_usd[i]`` in cash. ``fee_units[i]`` of the
    borrower's collateral goes to the protocol itself (Aave's liquidation protocol fee):
    it leaves the position but stays in the protocol, so the world never moves it.

    ``partial_cap`` makes entries divisible: a liquidator may take any share of entry
    ``i`` up to ``partial_cap[i]`` (and then the amounts scale with the share), or all
    of it; ``None`` (the default, e.g. keeper work) means all or nothing.
    """

    protocol: Protocol
    book: str
    asset: str
    slots: np.ndarray
    repay_usd: np.ndarray
    seize_units: np.ndarray
    reward_usd: np.ndarray
    fee_units: np.ndarray | None = None
    partial_cap: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.slots.size)

    def take(self, index: np.ndarray, share: np.ndarray | float = 1.0) -> LiquidationOffer:
        """Entries ``index``, each scaled to ``share`` of its amounts (a partial fill).

        Used both for what a liquidator executes and for what is left of an entry after
        one took part of it: of that rest, a further part short of the whole may bring
        the total taken up to the original ``partial_cap``, no further.
        """
        share = np.asarray(share, dtype=float)  # one number or one per entry: broadcasts
        cap = None
        if self.partial_cap is not None:
            safe = np.maximum(share, 1e-300)
            cap = np.clip(1.0 - (1.0 - self.partial_cap[index]) / safe, 0.0, 1.0)
        return LiquidationOffer(
            self.protocol,
            self.book,
            self.asset,
            self.slots[index],
            self.repay_usd[index] * share,
            self.seize_units[index] * share,
            self.reward_usd[index] * share,
            None if self.fee_units is None else self.fee_units[index] * share,
            cap,
        )


@dataclass
class LiquidationOutcome:
    """What executing accepted liquidations did, for the event log and the market.

    Attributes:
        bad_debt_usd: Loss per executed liquidation that no collateral covered.
        impact_units: Units of ``asset`` the protocol's own liquidation engine pushed onto
            the market (signed, positive = sold); zero for liquidations whose collateral
            the liquidator sells itself.
    """

    bad_debt_usd: np.ndarray
    impact_units: float = 0.0
    extra: dict[str, np.ndarray] = field(default_factory=dict)


P = TypeVar("P", bound="ProtocolParams")
"""The parameter model of a protocol class (``class Pool(Protocol[PoolParams])``)."""


class Protocol(mesa.Agent, abc.ABC, Generic[P]):
    """Base class of protocol models (a ``mesa.Agent``), generic over its parameters.

    Subclasses set ``type_name`` (the registry type used in scenario files) and
    ``Params`` (a :class:`ProtocolParams` model that validates the scenario's
    ``params`` table). A protocol reads the market through ``self.world``
    (:class:`~liqnet.protocols.world.World`) and moves cash and units only with
    ``self.world.transfer``; the world checks after every call that nothing else
    changed its ``cash`` or ``held_units()``.

    Default and wind-down: once ``defaulted`` is set (by the world's settlement) the
    protocol is no longer an agent (no levers, no credit negotiation) and opens no new
    positions, but it keeps running as an insolvent pool's contracts do: interest and
    funding accrue, users repay and close, unhealthy positions are still liquidated,
    and :func:`~liqnet.protocols.flows.run_flows` pays depositors and LPs what is left
    pro rata, recording the part of their claims not paid in ``haircut_usd``.

    Args:
        model: The world this protocol lives in (a ``MarketModel``: it has ``.world``).
        protocol_id: Unique name in the scenario.
        params: Validated parameters.
    """

    type_name: ClassVar[str]
    Params: ClassVar[type[ProtocolParams]]
    params: P

    def __init__(self, model: mesa.Model, protocol_id: str, params: P) -> None:
        super().__init__(model)
        # The world (liqnet.market.MarketModel) hands its protocol view to each protocol;
        # protocols type it as World so they never depend on the market layer.
        self.world: World = model.world
        self.protocol_id = protocol_id
        self.params = params
        self.cash = 0.0
        self.realised_bad_debt = 0.0
        self.revenue = 0.0  # income earned: interest margin, fees, penalties (cumulative)
        self.liquidity_shortfall = 0.0
        self.liquidated_usd_step = 0.0
        # Credit lines with other protocols (kept in sync by the market's ledger).
        self.credit_lent = 0.0
        self.credit_borrowed = 0.0
        # A defaulted protocol winds down (see the class docstring): it stops acting as
        # an agent and opening positions, but keeps accruing, liquidating and paying out.
        self.defaulted = False
        self.haircut_usd = 0.0  # claims depositors/LPs gave up in a wind-down (their loss)
        self.perceived_risk = 0.0  # users' smoothed fear of losses, drives runs
        # Latest flow state of each user account (run_flows writes it), for projections.
        self.flow_outlook: dict[str, FlowOutlook] = {}
        self._churn_days = 0.0

    def churn_days(self, days: float, interval_hours: float) -> float:
        """Days of position churn to apply now (0 until ``interval_hours`` accumulate).

        Opening and closing positions is applied in batches: arrivals over the interval
        are drawn at once (Poisson, so the rates are unchanged) and the position books
        are edited once per interval instead of every step. Aggregate flows (deposits,
        withdrawals, LP runs) still act every step.
        """
        self._churn_days += days
        if self._churn_days * 24.0 < interval_hours - 1e-9:
            return 0.0
        due, self._churn_days = self._churn_days, 0.0
        return due

    # -- balance sheet -----------------------------------------------------------------
    @abc.abstractmethod
    def own_equity(self) -> float:
        """Assets minus liabilities at oracle prices, excluding inter-protocol credit."""

    @abc.abstractmethod
    def total_assets(self) -> float:
        """Total assets at oracle prices, excluding credit lent (for ratios)."""

    def equity(self) -> float:
        """Equity including inter-protocol credit lent (asset) and borrowed (liability)."""
        return self.own_equity() + self.credit_lent - self.credit_borrowed

    def unrealised_losses(self) -> float:
        """USD of losses carried but not yet written off (e.g. underwater loans); 0 here."""
        return 0.0

    @abc.abstractmethod
    def held_units(self) -> dict[str, float]:
        """Asset units this protocol holds (collateral, inventory), for conservation."""

    def asset_exposures(self) -> dict[str, float]:
        """USD value of each asset this protocol's solvency depends on."""
        prices = self.world.oracle_prices
        return {a: u * prices[a] for a, u in self.held_units().items()}

    # -- levers and behaviour ----------------------------------------------------------
    @abc.abstractmethod
    def apply_levers(self, levers: np.ndarray) -> None:
        """Map the common levers (``risk``, ``price``) onto own parameters, bounded."""

    @abc.abstractmethod
    def accrue(self, dt_years: float) -> None:
        """Accrue interest, funding or decay over ``dt_years``."""

    @abc.abstractmethod
    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Users (borrowers, depositors, traders, LPs) act: open, repay, withdraw."""

    @classmethod
    def act_users_stacked(
        cls, protocols: Sequence[Protocol], dt_years: float, rngs: Sequence[np.random.Generator]
    ) -> None:
        """Users of several protocols of this type act, as each one's :meth:`act_users`
        in turn would (bit for bit), each with its own generator.

        A type that defines this itself is *stacked*: the world calls it once per step for
        all its protocols of exactly that type (a subclass that does not define it again
        is stepped per object), so it may do their work as one array program. This
        default is the per-object loop.
        """
        for protocol, rng in zip(protocols, rngs, strict=True):
            protocol.act_users(dt_years, rng)

    @classmethod
    def is_stacked(cls) -> bool:
        """True when this exact type steps its protocols' users together."""
        return cls is not Protocol and "act_users_stacked" in cls.__dict__

    # -- liquidations ------------------------------------------------------------------
    @abc.abstractmethod
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """Liquidations available at current oracle prices (index search, no scan)."""

    @abc.abstractmethod
    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Apply the accepted entries of ``offer``; cash and units move with the caller.

        The liquidator pays ``repay_usd`` and receives ``seize_units`` and ``reward_usd``:
        the protocol books those into ``cash`` and its books itself (the world checks
        them); any other flow (refunds to traders, leftover collateral) is a transfer.
        """

    # -- auctions (liqnet.protocols.auctions; driven by liqnet.market.keepers) ----------
    auction_book: AuctionBook | None = None
    """The protocol's collateral auctions; ``None``: it liquidates without auctions."""

    def bark(self) -> int:
        """Start auctions for unsafe positions at oracle prices (``AuctionBook.kick``);
        returns how many were barked. Collateral and debt move into the book, units stay
        in the protocol. Called by the keeper phase when some keeper's tx lands."""
        return 0

    def settle_auctions(self, fills: AuctionFills) -> None:
        """Book what keepers did to this protocol's auctions this step: the stablecoin
        they paid in, collateral paid out and returned to owners (the world moves both),
        and each closed auction's shortfall (bad debt) and surplus (penalty collected)."""
        raise NotImplementedError(
            f"{type(self).__name__} has an auction_book but no settle_auctions"
        )

    # -- hedging -----------------------------------------------------------------------
    def hedge_orders(self) -> dict[str, float]:
        """Units of each asset to sell (+) or buy (-) on the AMM in this cascade round.

        Hedging protocols (option vaults delta-hedging) override this; their trades move
        pools and prices like liquidations do and are recorded as ``hedge`` events.
        """
        return {}

    def on_hedge_fill(self, asset: str, units: float, usd: float) -> None:
        """The market filled a hedge: ``units`` (signed, + received) for ``usd`` (+ received).

        The world made the exchange with the pool: the protocol books ``usd`` into
        ``cash`` and ``units`` into its inventory (the world checks both moved so).
        """
        raise NotImplementedError(f"{type(self).__name__} placed hedge orders but cannot fill")

    # -- liquidity ---------------------------------------------------------------------
    def available_cash(self) -> float:
        """Cash the protocol can pay out to other protocols right now."""
        return max(0.0, self.cash)

    def receive_cash(self, amount: float) -> None:
        """Take in ``amount`` USD from another protocol (credit drawn or repaid).

        The world pays the counterparty side and checks ``cash`` rose by ``amount``.
        """
        self.cash += amount

    def pay_cash(self, amount: float) -> None:
        """Pay ``amount`` USD to another protocol (credit lent or repaid)."""
        self.cash -= amount

    def liquidity_need(self) -> float:
        """USD of obligations the protocol could not meet from its cash (unmet outflows)."""
        return self.liquidity_shortfall

    def liquidity_buffer_usd(self) -> float:
        """Cash the protocol aims to keep for its own users (its buffer target, USD).

        Built-ins set it from a parameter: ``liquidity_buffer`` (share of deposits) for
        lending pools, ``liquidity_buffer_days`` of user turnover for perps and vaults.
        """
        return 0.0

    def projected_outflows(self, days: float) -> float:
        """Expected net USD users take out over ``days`` at today's fear (runs included).

        Read from the flow state every :func:`~liqnet.protocols.flows.run_flows` call
        leaves in ``flow_outlook``, so a plug-in that uses ``run_flows`` gets it for free.
        """
        return math.fsum(o.net_outflow(days) for o in self.flow_outlook.values())

    def projected_need(self, days: float, maturing_usd: float = 0.0) -> float:
        """USD the protocol needs over the next ``days``, before it bites.

        Unmet outflows now, plus what restoring the buffer after the expected outflows
        and the credit falling due (``maturing_usd``, from the market's ledger) would
        take beyond today's cash.
        """
        buffer, outflows = self.liquidity_buffer_usd(), self.projected_outflows(days)
        return needed_usd(
            self.liquidity_shortfall, buffer, outflows, maturing_usd, self.available_cash()
        )

    def lendable(self, days: float, maturing_usd: float = 0.0) -> float:
        """Idle cash left after the expected outflows and maturing credit of ``days``."""
        return lendable_usd(self.idle_liquidity(), self.projected_outflows(days), maturing_usd)

    def pledgeable_assets(self) -> float:
        """USD of assets the protocol can pledge as collateral: all but its cash."""
        return max(0.0, self.total_assets() - self.available_cash())

    def funding_rate(self) -> float:
        """Annual rate the protocol pays for its marginal cash (its cost of funds).

        The treasury rule lends above it and borrows when the need is worth more. The
        default is 0: cash that earns its owners nothing (a perp vault's idle USD).
        """
        return 0.0

    @abc.abstractmethod
    def idle_liquidity(self) -> float:
        """USD the protocol could lend to others without failing its own users."""

    def treasury_reads(self, days: float, maturing_usd: float = 0.0) -> TreasuryReads:
        """What the treasury rule reads of this protocol over a horizon of ``days``.

        This one asks the methods above, so it follows every override. A type may define
        its own, each balance-sheet read made once with the same arithmetic; as with
        ``act_users_stacked``, the world uses it only on protocols of exactly that type
        (:meth:`treasury_reader`), so a subclass is read through the methods it overrides.
        """
        return TreasuryReads(
            self.funding_rate(),
            self.lendable(days, maturing_usd),
            self.idle_liquidity(),
            self.projected_need(days, maturing_usd),
            self.available_cash(),
        )

    @classmethod
    def treasury_reader(cls) -> Callable[[Protocol, float, float], TreasuryReads]:
        """The ``treasury_reads`` the world uses on protocols of exactly this type."""
        return cls.__dict__.get("treasury_reads", Protocol.treasury_reads)

    # -- observation -------------------------------------------------------------------
    @abc.abstractmethod
    def feature_values(self) -> dict[str, float]:
        """Protocol-specific values for :data:`FEATURE_NAMES` (missing ones are 0)."""

    def feature_list(self) -> list[float]:
        """The feature values in :data:`FEATURE_NAMES` order (missing ones are 0)."""
        values = self.feature_values()
        return [values.get(n, 0.0) for n in FEATURE_NAMES]

    def features(self) -> np.ndarray:
        """Fixed-length float32 feature vector in :data:`FEATURE_NAMES` order."""
        return np.array(self.feature_list(), dtype=np.float32)

    def step(self) -> None:  # mesa.Agent API; the world calls the phases explicitly
        """Not used: ``MarketModel.step`` calls each phase in the map's order."""
