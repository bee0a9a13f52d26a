"""Keepers and the auction phase of a step (7b, after the cascade).

Keepers (Mesa agents) bid in the collateral auctions of protocols that liquidate by
auction (``Protocol.auction_book``; ``liqnet.protocols.auctions`` has the rules). Each
step:

1. **Who lands.** Each transaction a keeper sends lands with probability ``1 / (1 +
   (gas / gas_tolerance)^4)`` (drawn from the world's ``"keepers"`` stream): on Black
   Thursday gas rose ~6x and keepers whose bots capped their gas price could not get
   bids in. The draw is per transaction -- one for the step's bark, then one per keeper
   per auction -- because a congested chain drops transactions, not whole bots: over a
   step's many auctions a keeper gets some bids in and misses others, so an auction is
   left to a lone bidder with the chance that its rivals all miss it (not all-or-nothing
   per step, which made a run's zero bids hinge on one or two draws). An English bid
   also needs the keeper's latency, ``latency_hours x gas``, within the bid duration
   ``ttl``.
2. **Bark.** If any keeper's bark transaction lands, every auctioning protocol barks
   its unsafe positions (someone must send it).
3. **Per auction, oldest first** (keepers' capital is shared across auctions in that
   order, so the loop is over auctions, never over positions):
   English: ``deal`` an expired bid, ``tick`` an unbid auction past its end, then one
   ascending round among the landing keepers (see :func:`_tend` / :func:`_dent`).
   Dutch: ``redo`` a stale auction (the first landing keeper collects tip + chip), then
   ``take`` at the decayed price, highest-value keeper first.
4. A keeper values collateral at what selling it on the collateral's AMM pool pays
   (the pool's quote for the lot, with slippage), less its margin ``min_profit`` and its
   gas, in stable units at the stablecoin pool's price. It sources the stablecoin it
   lacks by buying it on that pool with cash (the buys move its price: a crunch pushes
   the stablecoin above par), and sells won collateral on the pool at the end of the
   phase. Both are forced flow (reference impact, as the cascade's sales).
5. ``protocol.settle_auctions(fills)`` books the step (checked by ``world.call``);
   returned collateral goes to the owners' external account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mesa
import numpy as np

from liqnet.protocols.auctions import MIN_BID, AuctionBook, AuctionFills, dutch_price

if TYPE_CHECKING:
    from liqnet.core.schema import KeeperSpec
    from liqnet.market.model import MarketModel
    from liqnet.protocols.base import Protocol

__all__ = ["ZERO_BID_SHARE", "AuctionStats", "Keeper", "run_auctions"]

ZERO_BID_SHARE = 1e-6
"""A deal whose winning bid is below this share of its tab counts as a zero bid."""

_STEEPNESS = 4.0  # how sharply landing falls around gas_tolerance


class Keeper(mesa.Agent):
    """A keeper: cash, unit holdings (its stablecoin inventory, won collateral), gas."""

    def __init__(self, model: mesa.Model, spec: KeeperSpec) -> None:
        super().__init__(model)
        self.cash = spec.capital_usd
        self.units: dict[str, float] = {}
        if spec.stable_units and spec.stablecoin:
            self.units[spec.stablecoin] = spec.stable_units
        self.gas_cost_usd = spec.gas_cost_usd
        self.gas_tolerance = spec.gas_tolerance
        self.latency_hours = spec.latency_hours
        self.min_profit = spec.min_profit
        self.max_stable_price = spec.max_stable_price

    def landing(self, gas: float) -> float:
        """Probability its transactions land at gas multiplier ``gas``."""
        return 1.0 / (1.0 + (gas / self.gas_tolerance) ** _STEEPNESS)


@dataclass
class AuctionStats:
    """What the auction phase did in one step (all protocols)."""

    kicks: int = 0
    bids: int = 0
    deals: int = 0
    takes: int = 0
    restarts: int = 0
    zero_bid_deals: int = 0
    zero_bid_collateral_usd: float = 0.0
    sold_collateral_usd: float = 0.0  # all collateral keepers won, at the oracle price
    kicks_by_protocol: dict[str, int] = field(default_factory=dict)


@dataclass
class _Step:
    """One protocol's auction step in progress: its book, prices, keepers, fills."""

    model: MarketModel
    protocol: Protocol
    book: AuctionBook
    stable: str
    keepers: list[Keeper]
    chance: np.ndarray  # each keeper's landing probability this step
    lands: np.ndarray  # whose transaction lands, drawn afresh for each auction
    now: float
    fills: AuctionFills = field(default_factory=AuctionFills)
    stats: AuctionStats = field(default_factory=AuctionStats)

    def draw_landing(self) -> None:
        """Draw whose transactions land for the next auction (one per keeper)."""
        self.lands = self.model.keeper_rng.random(len(self.keepers)) < self.chance

    @property
    def stable_price(self) -> float:
        return self.model.pools[self.stable].price

    def spendable(self) -> np.ndarray:
        """Stable units each keeper can pay now: inventory plus what its cash buys on the
        pool before the pool's price passes the keeper's ``max_stable_price`` (a keeper
        does not pay $2 for a dollar to bid)."""
        pool = self.model.pools[self.stable]
        have = np.array([k.units.get(self.stable, 0.0) for k in self.keepers])
        cash = np.maximum(np.array([k.cash for k in self.keepers]), 0.0) * (1.0 - pool.fee)
        affordable = pool.units * cash / (pool.usd + cash)
        cap = np.array([k.max_stable_price for k in self.keepers])
        # Constant product: the price reaches cap once the pool holds sqrt(k / cap) units.
        below_cap = np.maximum(pool.units - np.sqrt(pool.units * pool.usd / cap), 0.0)
        return have + np.minimum(affordable, below_cap) * (1.0 - 1e-9)

    def unit_values(self, asset: str, lot: float) -> np.ndarray:
        """Stable units per collateral unit each keeper would pay for ``lot``."""
        if lot <= 0.0:
            return np.zeros(len(self.keepers))
        proceeds = float(self.model.pools[asset].quote_sell(lot))
        gas = self.model.gas_multiplier
        usd = np.array([proceeds * (1 - k.min_profit) - k.gas_cost_usd * gas for k in self.keepers])
        return np.maximum(usd, 0.0) / lot / self.stable_price

    def pay(self, k: int, units: float) -> None:
        """Keeper ``k`` pays ``units`` of the stablecoin (buying what it lacks on the pool)
        and the gas of one transaction."""
        keeper, pool = self.keepers[k], self.model.pools[self.stable]
        lacking = units - keeper.units.get(self.stable, 0.0)
        if lacking > 0.0:
            keeper.cash -= pool.buy_units(lacking)
            self.model.keeper_flows[self.stable] = (
                self.model.keeper_flows.get(self.stable, 0.0)
                - lacking * self.model.reference_prices[self.stable]
            )
            keeper.units[self.stable] = units
        keeper.units[self.stable] -= units
        self.gas(k)

    def receive(self, k: int, asset: str, units: float) -> None:
        """Keeper ``k`` receives ``units`` of ``asset``."""
        keeper = self.keepers[k]
        keeper.units[asset] = keeper.units.get(asset, 0.0) + units

    def gas(self, k: int) -> None:
        cost = self.keepers[k].gas_cost_usd * self.model.gas_multiplier
        self.keepers[k].cash -= cost
        self.model.external_cash["gas"] += cost


def run_auctions(model: MarketModel) -> AuctionStats:
    """The auction phase of one step (see the module doc); returns what it did."""
    total = AuctionStats()
    auctioneers = [p for p in model.protocols.values() if p.auction_book is not None]
    if not auctioneers:
        return total
    keepers = list(model.keepers)
    gas = model.gas_multiplier
    chance = np.array([k.landing(gas) for k in keepers])
    lands = model.keeper_rng.random(len(keepers)) < chance
    now = model.step_index * model.dt_hours
    for protocol in auctioneers:
        book = protocol.auction_book
        assert book is not None
        stable = protocol.params.stablecoin
        step = _Step(model, protocol, book, stable, keepers, chance, lands, now)
        if lands.any():
            before = len(book)
            model.world.call(protocol, "bark", protocol.bark)
            kicked = len(book) - before  # auctions kicked (a vault may give several lots)
            step.stats.kicks += kicked
            step.stats.kicks_by_protocol[protocol.protocol_id] = kicked
            _record(model, protocol, "auction_kick", np.arange(before, len(book)), book)
        exchange: dict[str, float] = {}
        if book.open.any() or len(book) > 0:
            model.world.call(protocol, "auctions", _protocol_step, step, exchange, units=exchange)
        for asset, units in step.fills.returned.items():
            model.external_units[asset] += units  # the vault owners' ("borrowers")
        _merge(total, step.stats)
    _sell_winnings(model, keepers)
    return total


def _english(step: _Step, a: int) -> None:
    book, params = step.book, step.book.params
    if book.winner[a] >= 0 and (book.tic[a] <= step.now or book.end[a] <= step.now):
        _deal(step, a)
        return
    if book.winner[a] < 0 and book.end[a] <= step.now:
        book.end[a] = step.now + params.tau_hours  # tick: flip.sol restarts, never closes
        book.restarts[a] += 1
        step.stats.restarts += 1
    latency = np.array([k.latency_hours for k in step.keepers]) * step.model.gas_multiplier
    bidders = step.lands & (latency <= params.ttl_hours)  # type: ignore[union-attr]
    if not bidders.any():
        return
    if book.bid[a] < book.tab[a]:
        _tend(step, a, bidders)
    if book.bid[a] >= book.tab[a] and book.winner[a] >= 0:
        _dent(step, a, bidders)


def _tend(step: _Step, a: int, bidders: np.ndarray) -> None:
    """One ascending round on the whole lot among the landing keepers (the standing
    winner included if it lands): the best ends just above its best rival, capped by its
    value, its means and the tab; a lone keeper bids the minimum."""
    book, beg = step.book, step.book.params.beg  # type: ignore[union-attr]
    tab, bid, winner = book.tab[a], book.bid[a], int(book.winner[a])
    asset = book.assets[book.asset[a]]
    cap = np.minimum(step.unit_values(asset, book.lot[a]) * book.lot[a], step.spendable())
    floor = tab if bid * (1 + beg) >= tab else max(bid * (1 + beg), MIN_BID)
    able = bidders & (cap >= floor)
    if winner >= 0:
        able[winner] = bool(bidders[winner])  # it may raise its own bid when challenged
    challengers = able.copy()
    if winner >= 0:
        challengers[winner] = False
    if not challengers.any():
        return  # nobody but the standing winner: its bid stands
    order = np.argsort(-np.where(able, cap, -np.inf), kind="stable")
    best = int(order[0])
    rival = float(cap[order[1]]) if able.sum() >= 2 else 0.0
    if winner >= 0 and not bidders[winner]:
        rival = max(rival, bid)  # a standing bid still has to be beaten
    price = min(float(cap[best]), tab, max(floor, rival * (1 + beg)))
    if price >= tab * (1 - 1e-12):
        price = tab
    if best == winner:
        step.pay(best, price - bid)  # raises its own bid by the difference
    else:
        step.pay(best, price)
        if winner >= 0:
            step.receive(winner, step.stable, bid)  # the outbid keeper gets its bid back
    step.fills.stable_in += price - bid
    book.bid[a], book.winner[a] = price, best
    book.tic[a] = step.now + step.book.params.ttl_hours  # type: ignore[union-attr]
    step.stats.bids += 1
    _record(step.model, step.protocol, "auction_bid", np.array([a]), book)


def _dent(step: _Step, a: int, bidders: np.ndarray) -> None:
    """One round on less collateral for the whole tab (the standing winner included if
    it lands): the lot falls to just below the best rival's; the rest returns to the
    owner."""
    book, beg = step.book, step.book.params.beg  # type: ignore[union-attr]
    tab, lot, winner = book.tab[a], book.lot[a], int(book.winner[a])
    asset = book.assets[book.asset[a]]
    per_unit = step.unit_values(asset, lot)
    need = np.divide(tab, per_unit, out=np.full_like(per_unit, np.inf), where=per_unit > 0)
    able = bidders & (step.spendable() >= tab) & (need <= lot / (1 + beg))
    able[winner] = bool(bidders[winner]) and need[winner] <= lot / (1 + beg)
    challengers = able.copy()
    challengers[winner] = False
    if not challengers.any():
        return
    order = np.argsort(np.where(able, need, np.inf), kind="stable")
    best = int(order[0])
    rival = float(need[order[1]]) if able.sum() >= 2 else lot
    if not bidders[winner]:
        rival = min(rival, lot)
    new_lot = max(float(need[best]), min(lot / (1 + beg), rival / (1 + beg)))
    if best == winner:
        step.gas(best)
    else:
        step.pay(best, tab)
        step.receive(winner, step.stable, tab)
    step.fills.add(step.fills.returned, asset, lot - new_lot)
    book.lot[a], book.winner[a] = new_lot, best
    book.tic[a] = step.now + step.book.params.ttl_hours  # type: ignore[union-attr]
    step.stats.bids += 1
    _record(step.model, step.protocol, "auction_bid", np.array([a]), book)


def _deal(step: _Step, a: int) -> None:
    book = step.book
    asset = book.assets[book.asset[a]]
    step.receive(int(book.winner[a]), asset, book.lot[a])
    step.fills.add(step.fills.collateral_out, asset, book.lot[a])
    book.raised[a] = book.bid[a]
    value = book.lot[a] * step.model.oracle_prices[asset]
    step.stats.sold_collateral_usd += value
    if book.bid[a] < ZERO_BID_SHARE * book.tab[a]:
        step.stats.zero_bid_deals += 1
        step.stats.zero_bid_collateral_usd += value
    step.stats.deals += 1
    _record(step.model, step.protocol, "auction_deal", np.array([a]), book)
    step.fills.close(book, np.array([a]))


def _dutch(step: _Step, a: int) -> None:
    book, params = step.book, step.book.params
    asset = book.assets[book.asset[a]]
    elapsed = step.now - book.start[a]
    price = float(dutch_price(params, book.top[a : a + 1], np.array([elapsed]))[0])  # type: ignore[arg-type]
    stale = elapsed > params.tail_hours or price < params.cusp * book.top[a]  # type: ignore[union-attr]
    if stale:
        landing = np.flatnonzero(step.lands)
        if not landing.size:
            return
        reward = params.tip_usd + params.chip * book.tab[a]  # type: ignore[union-attr]
        step.receive(int(landing[0]), step.stable, reward)  # redo's caller: tip + chip
        step.fills.incentives += reward
        step.gas(int(landing[0]))
        book.top[a] = step.model.oracle_prices[asset] * params.buf  # type: ignore[union-attr]
        book.start[a], book.restarts[a] = step.now, book.restarts[a] + 1
        step.stats.restarts += 1
        elapsed = 0.0
    latency = np.array([k.latency_hours for k in step.keepers]) * step.model.gas_multiplier
    for k in np.argsort(-step.unit_values(asset, book.lot[a]), kind="stable"):
        k = int(k)
        if not step.lands[k] or not book.open[a]:
            continue
        at = np.array([elapsed + latency[k]])
        price = float(dutch_price(params, book.top[a : a + 1], at)[0])  # type: ignore[arg-type]
        left = book.tab[a] - book.raised[a]
        amount = min(book.lot[a], left / price if price > 0 else book.lot[a])
        amount = min(amount, float(step.spendable()[k]) / price if price > 0 else amount)
        if amount <= 0.0 or step.unit_values(asset, amount)[k] < price:
            continue
        owe = amount * price
        step.pay(k, owe)
        step.receive(k, asset, amount)
        step.fills.stable_in += owe
        step.fills.add(step.fills.collateral_out, asset, amount)
        step.stats.sold_collateral_usd += amount * step.model.oracle_prices[asset]
        book.lot[a] -= amount
        book.raised[a] += owe
        step.stats.takes += 1
        _record(step.model, step.protocol, "auction_take", np.array([a]), book)
        if book.raised[a] >= book.tab[a] * (1 - 1e-12) or book.lot[a] <= 1e-12:
            step.fills.add(step.fills.returned, asset, book.lot[a])  # clip: the rest to usr
            book.lot[a] = 0.0
            step.fills.close(book, np.array([a]))


def _protocol_step(step: _Step, exchange: dict[str, float]) -> None:
    """Every open auction of one protocol, then its ``settle_auctions``: one checked call,
    so the book's changes and the protocol's booking are checked together against
    ``exchange`` (stablecoin in, collateral out), filled here as the step goes."""
    book = step.book
    for a in book.open_ids():
        step.draw_landing()
        if book.english:
            _english(step, int(a))
        else:
            _dutch(step, int(a))
    fills = step.fills
    exchange[step.stable] = exchange.get(step.stable, 0.0) + fills.stable_in - fills.incentives
    for bucket in (fills.collateral_out, fills.returned):
        for asset, units in bucket.items():
            exchange[asset] = exchange.get(asset, 0.0) - units
    if fills.closed.size or any(exchange.values()):
        step.protocol.settle_auctions(fills)


def _sell_winnings(model: MarketModel, keepers: list[Keeper]) -> None:
    """Keepers sell won collateral on its pool (forced flow); stablecoins they keep."""
    stables = {p.params.stablecoin for p in model.protocols.values() if p.auction_book is not None}
    for keeper in keepers:
        for asset, units in keeper.units.items():
            if asset in stables or units <= 0.0:
                continue
            keeper.cash += model.pools[asset].sell(units)
            keeper.units[asset] = 0.0
            flow = units * model.reference_prices[asset]
            model.keeper_flows[asset] = model.keeper_flows.get(asset, 0.0) + flow


def _record(
    model: MarketModel, protocol: Protocol, kind: str, ids: np.ndarray, book: AuctionBook
) -> None:
    if ids.size == 0:
        return
    assets = {book.assets[i] for i in book.asset[ids]}
    for asset in assets:
        rows = ids[book.assets.index(asset) == book.asset[ids]]
        model.events.append(
            step=model.step_index,
            round=-1,
            kind=kind,
            protocol=protocol.protocol_id,
            book=f"{asset}/auction",
            asset=asset,
            position=book.slot[rows],
            repaid_usd=book.bid[rows] if book.english else book.raised[rows],
            seized_units=book.lot[rows],
            proceeds_usd=book.tab[rows],
            reward_usd=0.0,
            bad_debt_usd=np.where(
                book.open[rows], 0.0, np.maximum(book.debt[rows] - book.raised[rows], 0.0)
            ),
            oracle_price=model.oracle_prices[asset],
        )


def _merge(total: AuctionStats, part: AuctionStats) -> None:
    for name in ("kicks", "bids", "deals", "takes", "restarts", "zero_bid_deals"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.zero_bid_collateral_usd += part.zero_bid_collateral_usd
    total.sold_collateral_usd += part.sold_collateral_usd
    total.kicks_by_protocol.update(part.kicks_by_protocol)
