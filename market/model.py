"""MarketModel: the world, a ``mesa.Model`` stepping in the architecture map's order."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np
import pandas as pd
from mesa.agent import AgentSet

from liqnet.core.schema import MAX_MULTIPLIER
from liqnet.core.units import HOURS_PER_YEAR
from liqnet.market.amm import ConstantProductPool
from liqnet.market.cascade import RoundStats, apply_impact, run_cascades
from liqnet.market.datacollection import TIMESERIES_TABLE, TimeSeries
from liqnet.market.events import EventLog
from liqnet.market.keepers import AuctionStats, Keeper, run_auctions
from liqnet.market.ledger import CreditLedger
from liqnet.market.negotiation import get_mechanism
from liqnet.market.oracle import Oracle
from liqnet.market.participants import Arbitrageur, Liquidator
from liqnet.market.prices import AssetDynamics, FlowImpact, PriceProcess
from liqnet.market.settlement import negotiate, settle, sync_credit
from liqnet.market.treasury import CreditBook
from liqnet.market.users import UserPhase, run_together
from liqnet.market.world import MarketWorld
from liqnet.protocols.base import LEVER_NAMES, Protocol
from liqnet.protocols.position_stack import StackRegistry
from liqnet.protocols.registry import get_protocol_class
from liqnet.protocols.world import EXTERNAL_ACCOUNTS

if TYPE_CHECKING:
    from liqnet.core.schema import Scenario


class MarketModel(mesa.Model):
    """One simulated crypto market with protocols, pools, oracles and liquidators.

    Args:
        scenario: A validated scenario (see :func:`liqnet.scenarios.load`).
        seed: Overrides the scenario seed.
        feedback: Overrides the scenario's ``feedback`` switch. ``False`` turns off price
            impact of forced sales and inter-protocol loss passing; the exogenous price
            path is unchanged, so the two runs are counterfactual twins.
        position_stacks: Where the protocols' position books are stored (default: a
            registry of this world's own). The worlds of a
            :class:`~liqnet.market.world_batch.WorldBatch` share one, so that a stacked
            type steps the books of all of them as one array program; results are the
            same either way.
    """

    check_phases: bool = False
    """Check the world's USD and units after every phase of a step (naming the phase in a
    :class:`~liqnet.core.ConservationError`), not only over the whole step. The test suite
    and the plugin kit turn it on; runs and training keep the cheaper whole-step check."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        feedback: bool | None = None,
        position_stacks: StackRegistry | None = None,
    ) -> None:
        self.seed_value = scenario.seed if seed is None else int(seed)
        super().__init__(seed=self.seed_value)
        self.scenario = scenario
        self.feedback = scenario.feedback if feedback is None else bool(feedback)
        self.dt_hours = scenario.dt_hours
        self.dt_years = scenario.dt_hours / HOURS_PER_YEAR
        self.step_index = 0
        self.gas_multiplier = 1.0
        self.permanent_impact = scenario.market.permanent_impact
        self.flow_impact = FlowImpact(
            scenario.market.impact_y,
            scenario.market.permanent_impact,
            np.array([a.daily_volume_usd for a in scenario.market.assets.values()]),
            np.array([a.cex_depth_2pct_usd for a in scenario.market.assets.values()]),
            scenario.market.impact_memory_hours,
        )
        """Square-root impact of forced flow on the reference price (cascade step 7)."""
        self.max_cascade_rounds = scenario.market.max_cascade_rounds
        self.external_cash = dict.fromkeys(EXTERNAL_ACCOUNTS, 0.0)
        assets = scenario.market.assets
        self.asset_names: tuple[str, ...] = tuple(assets)
        self.external_units = dict.fromkeys(self.asset_names, 0.0)

        self.price_process = PriceProcess(
            {name: AssetDynamics.of(a) for name, a in assets.items()},
            scenario.market.correlation_matrix(),
            scenario.dt_hours,
            np.array(scenario.market.regimes.multipliers),
            np.array(scenario.market.regimes.transitions),
            scenario.shock_table(),
            self.rng_for("prices"),
            scenario.market.regimes.initial,
        )
        self.pools = {}
        self.oracles = {}
        for name, a in assets.items():
            units = a.pool_usd / a.price
            self.pools[name] = ConstantProductPool(name, units, a.pool_usd, a.pool_fee)
            self.external_cash["cex"] -= a.pool_usd
            self.external_units[name] -= units
            heartbeat = max(1, math.ceil(a.oracle.heartbeat_hours / scenario.dt_hours))
            self.oracles[name] = Oracle(
                name, a.price, a.oracle.deviation_threshold, heartbeat, a.oracle.latency_steps
            )
        self.oracle_prices = {name: a.price for name, a in assets.items()}
        self.reference_prices = dict(self.oracle_prices)
        self.initial_prices = dict(self.oracle_prices)

        # Mesa AgentSets, in scenario order (never shuffled: the order is part of the
        # seeded trajectory); ``do`` steps each set as Mesa models do.
        self.liquidators = AgentSet(
            [
                Liquidator(self, s.capital_usd, s.gas_cost_usd, s.min_profit_usd)
                for s in scenario.liquidators
            ],
            random=self.random,
        )
        self.arbitrageurs = AgentSet(
            [
                Arbitrageur(self, s.capital_usd, s.gas_cost_usd, s.min_profit_usd)
                for s in scenario.arbitrageurs
            ],
            random=self.random,
        )
        self.liquidation_hurdle_usd = self._liquidation_hurdle()
        """Smallest liquidation value some liquidator takes (refreshed every step)."""
        # Keepers bid in collateral auctions (step 7b); their stablecoin inventory comes
        # from outside the world like the pools' reserves.
        self.keepers = AgentSet([Keeper(self, s) for s in scenario.keepers], random=self.random)
        self.keeper_rng = self.rng_for("keepers")
        self.keeper_flows: dict[str, float] = {}  # this step's forced flow of keepers, USD
        self.auction_history: list[AuctionStats] = []
        # The agents once more as tuples: the conservation checks read them twice a step,
        # and iterating the AgentSets (weak references) each time cost a tenth of a small
        # world's step.
        self.keeper_agents = tuple(self.keepers)
        """The keepers, in scenario order."""
        self.market_agents = (*self.liquidators, *self.arbitrageurs, *self.keeper_agents)
        """Every liquidator, arbitrageur and keeper, in that order."""
        for agent in self.market_agents:
            self.external_cash["owners"] -= agent.cash
        for keeper in scenario.keepers:
            if keeper.stable_units and keeper.stablecoin:
                self.external_units[keeper.stablecoin] -= keeper.stable_units

        self.position_stacks = StackRegistry() if position_stacks is None else position_stacks
        """The registry holding this world's position books (see ``position_stacks``)."""
        self.world = MarketWorld(self)
        """What protocols see of this market, the transfer API and conservation checks."""
        self.protocols: dict[str, Protocol] = {}
        self._released = False
        with self.position_stacks.claim() as self._stack_rows:
            for spec in scenario.protocols:
                cls = get_protocol_class(spec.type)
                params = cls.Params.model_validate(spec.params)
                self.protocols[spec.id] = self.world.construct(cls, spec.id, params)
        self.users = UserPhase(self.world, self.protocols, self.rng_for)
        """Phase 6, accrual and users (stacked types as one array program each)."""
        self.user_rngs = self.users.rngs
        """Each protocol's users' own generator, by id."""

        # Protocols that trade on the pools themselves (delta hedgers), found once.
        self.hedgers = [
            p for p in self.protocols.values() if type(p).hedge_orders is not Protocol.hedge_orders
        ]
        # Spikes as intervals (not one entry per spike step: a long spike is one row).
        spikes = scenario.gas_spikes
        self._gas_spikes = (
            np.array([s.step for s in spikes], dtype=np.int64),
            np.array([s.step + s.duration_steps for s in spikes], dtype=np.int64),
            np.array([s.multiplier for s in spikes], dtype=float),
        )
        self.pending_levers: dict[str, np.ndarray] = {}
        self.standing_levers = {spec.id: spec.lever_vector() for spec in scenario.protocols}
        self.last_levers = dict(self.standing_levers)
        self.ledger = CreditLedger(list(self.protocols))
        self.mechanism = get_mechanism(
            scenario.negotiation.mechanism, **scenario.negotiation.params
        )
        self.negotiation_rng = self.rng_for("negotiation")
        self.credit_book = CreditBook()
        """What agents see of the credit market (last rate, volume, best quotes)."""
        self.credit_losses = dict.fromkeys(self.protocols, 0.0)
        self.events = EventLog()
        self.cascade_history: list[list[RoundStats]] = []
        self.defaults: list[dict[str, Any]] = []
        self.series = TimeSeries(self)
        """The per-step time series (Mesa's DataCollector underneath)."""
        self.closing_equity: list[float] = [p.equity() for p in self.protocols.values()]
        """Every protocol's equity (scenario order) at the end of the last step, as
        settlement read it (at construction: the opening equity). A step reads each
        equity once for settlement, data collection and the environments' observations:
        nothing moves money between those reads."""
        self.collect(self.closing_equity)

    # -- randomness --------------------------------------------------------------------
    def rng_for(self, stream: str) -> np.random.Generator:
        """An independent generator for a named stream, derived from the world seed.

        Separate streams keep the exogenous price path identical between a run and its
        ``feedback=False`` twin even when behaviour (and so draws elsewhere) differs.
        """
        return np.random.default_rng([self.seed_value, zlib.crc32(stream.encode())])

    # -- queries -----------------------------------------------------------------------
    def live_protocols(self) -> list[Protocol]:
        """Protocols that have not defaulted: the ones that still act as agents.

        A defaulted protocol is not among them but stays in the world, winding down:
        step 6 and the cascade (step 7) still run it (see :meth:`step`).
        """
        return [p for p in self.protocols.values() if not p.defaulted]

    def total_cash(self) -> float:
        """USD held by everyone, modelled or external: constant by construction."""
        holders = (
            [p.cash for p in self.protocols.values()]
            + [a.cash for a in self.market_agents]
            + [pool.usd for pool in self.pools.values()]
            + list(self.external_cash.values())
        )
        return math.fsum(holders)

    def total_units(self) -> dict[str, float]:
        """Units of each asset held by everyone: constant by construction."""
        totals = {}
        for asset in self.asset_names:
            parts = [self.pools[asset].units, self.external_units[asset]]
            parts += [p.held_units().get(asset, 0.0) for p in self.protocols.values()]
            parts += [k.units.get(asset, 0.0) for k in self.keeper_agents]
            totals[asset] = math.fsum(parts)
        return totals

    # -- the step ----------------------------------------------------------------------
    def set_levers(self, levers: dict[str, np.ndarray]) -> None:
        """Queue each protocol's lever vector for the next step (see ``LEVER_NAMES``)."""
        for protocol_id, vector in levers.items():
            if protocol_id not in self.protocols:
                raise KeyError(f"unknown protocol {protocol_id!r}; allowed {list(self.protocols)}")
            vector = np.asarray(vector, dtype=float)
            if vector.shape != (len(LEVER_NAMES),) or not np.isfinite(vector).all():
                raise ValueError(
                    f"levers[{protocol_id!r}]: expected {len(LEVER_NAMES)} finite values "
                    f"{LEVER_NAMES} in [-1, 1], got {vector!r}"
                )
            self.pending_levers[protocol_id] = vector

    def _gas_at(self, step: int) -> float:
        """Gas multiplier of ``step``: the product of the spikes in force, capped at
        ``MAX_MULTIPLIER`` (overlapping spikes must not overflow the gas bill)."""
        starts, ends, multipliers = self._gas_spikes
        active = multipliers[(starts <= step) & (step < ends)]
        return min(float(np.prod(active)), MAX_MULTIPLIER) if active.size else 1.0

    def _liquidation_hurdle(self) -> float:
        """Smallest value (collateral at the pool price + reward - repayment) of a
        liquidation that some liquidator would take: its gas plus its minimum profit."""
        return min(
            (
                liquidator.gas_cost_usd * self.gas_multiplier + liquidator.min_profit_usd
                for liquidator in self.liquidators
            ),
            default=math.inf,
        )

    def poll_oracles(self) -> None:
        """Let every oracle publish if its rules fire; refresh the published prices."""
        prices = self.price_process.prices
        for i, name in enumerate(self.asset_names):
            self.reference_prices[name] = float(prices[i])
            oracle = self.oracles[name]
            oracle.poll(self.step_index, self.reference_prices[name])
            self.oracle_prices[name] = oracle.price

    def step(self) -> None:
        """Advance the world by one step, in the order of the architecture map."""
        step_together([self])

    def release_positions(self) -> None:
        """Free this world's rows of a shared :attr:`position_stacks` for the next world
        (a batch does it when the world's episode ends). The world stays readable, its
        books holding copies of their storage; stepping it again raises."""
        self.position_stacks.release(self._stack_rows)
        self._stack_rows = {}
        self._released = True

    def begin_step(self) -> None:
        """Phases 1-5 of :meth:`step` (levers to oracles), up to the users phase.

        ``step`` is ``begin_step()``, phase 6 (:func:`~liqnet.market.users.run_together`),
        :meth:`accrue_credit`, phase 7 (:func:`~liqnet.market.cascade.run_cascades`), then
        :meth:`finish_step`: :func:`step_together` runs phases 6 and 7 of several worlds at
        once.

        Raises:
            RuntimeError: The world's positions were released (its episode ended).
        """
        if self._released:
            raise RuntimeError(
                "this world's positions were released when its episode ended "
                "(release_positions): read it, but step a new world"
            )
        self.step_index += 1
        for protocol in self.protocols.values():
            protocol.liquidated_usd_step = 0.0
        # 1. Levers: what agents set this step, else each protocol's standing levers.
        levers = {**self.standing_levers, **self.pending_levers}
        self.pending_levers = {}
        self.last_levers = levers
        for protocol_id, protocol in self.protocols.items():
            vector = levers[protocol_id]
            if not protocol.defaulted and (vector[0] != 0.0 or vector[1] != 0.0):
                self.world.call(protocol, "apply_levers", protocol.apply_levers, vector)
        # World-level conservation (protocol calls are checked per call): over the whole
        # step, or phase by phase with check_phases (each check costs ~3% of a step).
        held = self.world.holdings()
        phases = self.check_phases
        # 2. Negotiation.
        negotiate(self, levers)
        if phases:
            held = self.world.check_phase("negotiation", held)
        # 3. Exogenous move.
        self.gas_multiplier = self._gas_at(self.step_index)
        self.liquidation_hurdle_usd = self._liquidation_hurdle()
        self.price_process.step()
        prices = self.price_process.prices
        # 4. Arbitrage.
        for i, name in enumerate(self.asset_names):
            self.arbitrageurs.do("arbitrage", self.pools[name], float(prices[i]))
        if phases:
            held = self.world.check_phase("arbitrage", held)
        # 5. Oracle.
        for i, name in enumerate(self.asset_names):
            self.oracles[name].record(float(prices[i]))
        self.poll_oracles()
        # 6. Accrual and users (run_together, between the halves): every protocol,
        # defaulted ones included. An insolvent pool's contracts keep running (Aave and
        # Compound have no default state): a defaulted protocol opens nothing new but
        # accrues, and its users repay, close and withdraw what is left pro rata
        # (protocols.flows.run_flows).
        self._held = held

    def accrue_credit(self) -> None:
        """Phase 6b of :meth:`step`: credit lines accrue, after the users phase."""
        if self.ledger.lines.count:
            self.ledger.accrue(self.dt_years)
            sync_credit(self)
        if self.check_phases:
            self._held = self.world.check_phase("accrual and users", self._held)

    def finish_step(self, cascade_rounds: list[RoundStats]) -> None:
        """Phases 7b-9 of :meth:`step` (auctions to observation), after the cascade
        rounds (phase 7, :func:`~liqnet.market.cascade.run_cascades`) that did
        ``cascade_rounds``."""
        held, phases = self._held, self.check_phases
        self.cascade_history.append(cascade_rounds)
        if phases:
            held = self.world.check_phase("cascade (liquidations, sales, hedges)", held)
        # 7b. Auctions: keepers bark, bid, take and deal (protocols with an auction book).
        if self.keepers or any(p.auction_book is not None for p in self.protocols.values()):
            self._auctions()
            if phases:
                held = self.world.check_phase("auctions (keepers)", held)
        # 8. Settlement: maturities, defaults, clearing and loss passing.
        settle(self)
        self.world.check_phase(
            "settlement" if phases else "one of its phases (set check_phases to find which)",
            held,
        )
        # 9. Observe.
        self.collect(self.closing_equity)
        # Mesa's batch_run and user loops stop at the scenario's horizon.
        self.running = self.step_index < self.scenario.steps

    def _auctions(self) -> None:
        """Step 7b: the keeper phase, then the impact of its forced flow and an oracle poll."""
        self.keeper_flows = {}
        self.auction_history.append(run_auctions(self))
        if self.feedback:
            for asset, flow_usd in self.keeper_flows.items():
                apply_impact(self, asset, flow_usd)
        if self.keeper_flows:
            self.poll_oracles()

    # -- data collection (market.datacollection) --------------------------------------
    def collect(self, equity: list[float] | None = None) -> None:
        """Record the current state as one row of the time series (``equity``: every
        protocol's equity as just read; the step passes :attr:`closing_equity`)."""
        self.series.collect(equity)

    @property
    def datacollector(self) -> mesa.DataCollector:
        """The Mesa DataCollector holding the time series, up to date.

        Its model variables (``get_model_vars_dataframe()``) and its table ``"world"``
        hold the same rows, one per step, the initial state first.
        """
        return self.series.datacollector

    def timeseries(self) -> pd.DataFrame:
        """The time series so far: one row per step, the initial state first."""
        return self.datacollector.get_table_dataframe(TIMESERIES_TABLE)


def step_together(models: Sequence[MarketModel]) -> None:
    """:meth:`MarketModel.step` of several worlds, phases 6 and 7 of all of them at once.

    Every world's :meth:`~MarketModel.begin_step`; the users phase of all of them
    (:func:`~liqnet.market.users.run_together`: each stacked type's protocols of every
    world in one call, so the worlds must share one ``position_stacks`` registry unless
    there is one); every :meth:`~MarketModel.accrue_credit`; the cascade rounds of all
    of them in lockstep (:func:`~liqnet.market.cascade.run_cascades`); then every
    :meth:`~MarketModel.finish_step`. Each world ends the step as it would alone, bit
    for bit.
    """
    if not models:
        return
    for model in models:
        model.begin_step()
    run_together([model.users for model in models], models[0].dt_years)
    for model in models:
        model.accrue_credit()
    for model, rounds in zip(models, run_cascades(models), strict=True):
        model.finish_step(rounds)
