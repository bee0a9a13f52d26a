"""Helpers for the perp exchange tests: small worlds, brute-force checks, book edits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols.perp import PerpExchange, PerpMarket, PerpSide
from liqnet.scenarios import load

HOUR = 1.0 / 8760.0  # one hour in years
SIDES = ("long", "short")


def world(seed: int = 1, positions: int = 200, **perp_params: Any) -> MarketModel:
    """The baseline world, ``positions`` per protocol; ``perp_params`` override dydx."""
    overrides: dict[str, Any] = {f"protocols.{k}.params.positions": positions for k in range(3)}
    overrides.update({f"protocols.2.params.{k}": v for k, v in perp_params.items()})
    return MarketModel(load("baseline", overrides), seed=seed)


def perp_of(model: MarketModel) -> PerpExchange:
    """The perp exchange of the baseline world."""
    perp = model.protocols["dydx"]
    assert isinstance(perp, PerpExchange)
    return perp


def assert_cash_identity(perp: PerpExchange) -> None:
    """``cash == margins + vault_cash + insurance_fund + treasury`` (running sums)."""
    margins = sum(s.sums["margin"] for m in perp.markets.values() for s in m.sides.values())
    total = margins + perp.vault_cash + perp.insurance_fund + perp.treasury
    assert perp.cash == pytest.approx(total, rel=1e-6)


def assert_running_sums(side: PerpSide) -> None:
    """A side's running sums equal sums over its active positions."""
    slots = side.positions.active_slots()
    cols = side.positions.columns
    size = cols["size"][slots]
    expected = {
        "size": size.sum(),
        "size_entry": size @ cols["entry"][slots],
        "size_funding": size @ cols["funding_entry"][slots],
        "margin": cols["margin"][slots].sum(),
    }
    for name, value in expected.items():
        assert side.sums[name] == pytest.approx(value, rel=1e-9, abs=1e-6), name


def brute_force(perp: PerpExchange, market: PerpMarket, side: PerpSide) -> set[int]:
    """Active slots with ``margin + pnl < maintenance_margin * size * price`` (a scan)."""
    price = perp.model.oracle_prices[market.asset]
    slots = side.positions.active_slots()
    cols = side.positions.columns
    equity = cols["margin"][slots] + side.pnl(slots, price, market.funding_index)
    below = equity < market.maintenance_margin * cols["size"][slots] * price
    return set(slots[below].tolist())


def candidates(perp: PerpExchange) -> dict[str, list[int]]:
    """Slots offered per book (``"ETH:long"``, ...), every book present."""
    found: dict[str, list[int]] = {f"{a}:{s}": [] for a in perp.markets for s in SIDES}
    for offer in perp.liquidation_candidates():
        assert offer.protocol is perp
        np.testing.assert_array_equal(offer.repay_usd, 0.0)
        np.testing.assert_array_equal(offer.seize_units, 0.0)
        np.testing.assert_array_equal(offer.reward_usd, perp.params.keeper_reward_usd)
        found[offer.book] = offer.slots.tolist()
    return found


def check_index(perp: PerpExchange, levels: tuple[float, ...]) -> int:
    """Compare the index with a brute-force scan at each price level; count the hits."""
    model = perp.model
    base = dict(model.oracle_prices)
    hits = 0
    for level in levels:
        for asset in perp.markets:
            model.oracle_prices[asset] = base[asset] * level
        found = candidates(perp)
        for asset, market in perp.markets.items():
            for name, side in market.sides.items():
                got = found[f"{asset}:{name}"]
                assert len(got) == len(set(got))
                assert set(got) == brute_force(perp, market, side), (level, asset, name)
                hits += len(got)
    model.oracle_prices.update(base)
    return hits


def only_side(perp: PerpExchange, asset: str, keep: str) -> None:
    """Close every position on the other side of ``asset`` voluntarily at the oracle."""
    close_all(perp, asset, "short" if keep == "long" else "long", perp.model.oracle_prices[asset])


def close_all(perp: PerpExchange, asset: str, side_name: str, price: float) -> None:
    """Close a whole side voluntarily at ``price`` and mark its slots in the index."""
    market = perp.markets[asset]
    side = market.sides[side_name]
    slots = side.positions.active_slots()
    perp._close_voluntarily(market, side, slots, price)
    side.index.mark_dirty(slots)
    assert side.positions.count == 0


def add_position(
    perp: PerpExchange, asset: str, side: str, size: float, entry: float, margin: float
) -> int:
    """Open one hand-made position; the trader's deposit moves into the exchange's cash."""
    s = perp.markets[asset].sides[side]
    before = set(s.positions.active_slots().tolist())
    s.add(
        size=np.array([size]),
        entry=np.array([entry]),
        margin=np.array([margin]),
        funding_entry=np.array([perp.markets[asset].funding_index]),
    )
    perp.world.transfer("traders", perp, usd=margin)
    (slot,) = set(s.positions.active_slots().tolist()) - before
    return slot


def expected_hourly_rate(perp: PerpExchange, market: PerpMarket) -> float:
    """clamp((premium + skew_premium * skew) * price_multiplier + interest_8h, +-cap) / 8,
    the premium that of the pool's impact bid/ask (pool -/+ impact_spread) over the oracle."""
    p = perp.params
    longs, shorts = (market.sides[s].sums["size"] for s in SIDES)
    skew = (longs - shorts) / (longs + shorts)
    cap = p.funding_cap_multiple * (market.initial_margin - market.maintenance_margin)
    index = perp.model.oracle_prices[market.asset]
    mark, spread = perp.model.pools[market.asset].price, p.impact_spread
    premium = (max(0, mark * (1 - spread) - index) - max(0, index - mark * (1 + spread))) / index
    raw = (premium + p.skew_premium * skew) * perp.price_multiplier + p.interest_rate_8h
    return min(cap, max(-cap, raw)) / 8.0


def clean_eth_book(perp: PerpExchange) -> None:
    """Close every ETH position voluntarily at 3,000 (no PnL, books settled)."""
    for side_name in SIDES:
        close_all(perp, "ETH", side_name, 3000.0)
