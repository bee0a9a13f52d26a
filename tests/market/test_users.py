"""The users phase of a batch: every world as it would be alone, bit for bit."""

from __future__ import annotations

import pytest

from liqnet.market import MarketModel
from liqnet.market.model import step_together
from liqnet.market.users import run_together
from liqnet.protocols.position_stack import StackRegistry
from tests.helpers.worlds import Small


@pytest.mark.parametrize("name", ["baseline", "ecosystem"])
def test_worlds_stepped_together_equal_each_world_stepped_alone(name: str, small: Small) -> None:
    scenario = small(name, positions=400)
    registry = StackRegistry()
    together = [MarketModel(scenario, seed=s, position_stacks=registry) for s in range(3)]
    alone = [MarketModel(scenario, seed=s) for s in range(3)]
    assert together[0].world.stacks is together[2].world.stacks
    assert alone[0].world.stacks is not alone[1].world.stacks
    for _ in range(30):
        step_together(together)
        for model in alone:
            model.step()
    for a, b in zip(alone, together, strict=True):
        assert a.timeseries().equals(b.timeseries())
        assert a.events.to_frame().equals(b.events.to_frame())
        assert a.defaults == b.defaults
    prices = {float(m.reference_prices["ETH"]) for m in together}
    assert len(prices) == 3  # three worlds, three streams: not one world three times


def test_worlds_must_share_their_stacks_types_and_step_length(small: Small) -> None:
    scenario = small(positions=100)
    registry = StackRegistry()
    batches = {
        "share their position stacks": [MarketModel(scenario, seed=s) for s in range(2)],
        "same stacked types": [
            MarketModel(scenario, position_stacks=registry),
            MarketModel(small("black_thursday", positions=100), position_stacks=registry),
        ],
        "a world steps": [
            MarketModel(scenario, position_stacks=registry),
            MarketModel(small("flash_crash", positions=100), position_stacks=registry),
        ],
    }
    for message, models in batches.items():
        cash = [[p.cash for p in m.protocols.values()] for m in models]
        with pytest.raises(ValueError, match=message):
            run_together([m.users for m in models], models[0].dt_years)
        # Refused before anything ran: no protocol accrued or served its users.
        assert [[p.cash for p in m.protocols.values()] for m in models] == cash
