"""Tests for liqnet.market.oracle: deviation threshold, heartbeat, latency, update count."""

from __future__ import annotations

import pytest

from liqnet.market import MarketModel
from liqnet.market.oracle import Oracle
from liqnet.scenarios import load


def make_oracle(threshold: float = 0.005, heartbeat: int = 1_000, latency: int = 0) -> Oracle:
    """An ETH oracle that starts at 100 USD."""
    return Oracle("ETH", 100.0, threshold, heartbeat, latency)


def test_deviation_below_threshold_does_not_publish() -> None:
    oracle = make_oracle()
    for step, price in enumerate([100.4, 99.6, 100.49, 99.51], start=1):
        assert oracle.poll(step, price) is False
        assert oracle.price == 100.0
    assert oracle.updates == 0
    assert oracle.last_update_step == 0


@pytest.mark.parametrize("price", [100.6, 99.4, 150.0, 10.0])
def test_deviation_at_or_above_threshold_publishes(price: float) -> None:
    oracle = make_oracle()
    assert oracle.poll(7, price) is True
    assert oracle.price == price
    assert oracle.last_update_step == 7
    assert oracle.updates == 1


def test_deviation_is_measured_from_the_last_published_price() -> None:
    oracle = make_oracle(threshold=0.01)
    assert oracle.poll(1, 100.8) is False  # 0.8% from 100
    assert oracle.poll(2, 101.5) is True  # 1.5% from 100 -> publish 101.5
    assert oracle.poll(3, 102.4) is False  # 0.89% from 101.5 (2.4% from 100)
    assert oracle.poll(4, 102.6) is True  # 1.08% from 101.5
    assert oracle.price == 102.6
    assert oracle.updates == 2


def test_zero_threshold_publishes_every_poll() -> None:
    oracle = make_oracle(threshold=0.0)
    for step in range(1, 6):
        assert oracle.poll(step, 100.0)
    assert oracle.updates == 5


def test_heartbeat_forces_update_after_heartbeat_steps() -> None:
    oracle = make_oracle(threshold=0.5, heartbeat=3)
    fired = [oracle.poll(step, 100.0 + step) for step in range(1, 10)]
    # Published at steps 3, 6 and 9: exactly heartbeat_steps after the previous one.
    assert fired == [False, False, True, False, False, True, False, False, True]
    assert oracle.updates == 3
    assert oracle.last_update_step == 9
    assert oracle.price == 109.0


def test_deviation_update_resets_the_heartbeat_clock() -> None:
    oracle = make_oracle(threshold=0.05, heartbeat=4)
    assert oracle.poll(2, 110.0)  # deviation
    assert not oracle.poll(5, 111.0)  # 3 steps since the last update
    assert oracle.poll(6, 111.0)  # 4 steps: heartbeat
    assert oracle.updates == 2


@pytest.mark.parametrize("latency", [1, 2, 5])
def test_latency_observes_reference_recorded_latency_steps_before(latency: int) -> None:
    oracle = make_oracle(threshold=0.0, latency=latency)
    recorded = [100.0 + 3.0 * i for i in range(1, 13)]
    for n, reference in enumerate(recorded, start=1):
        oracle.record(reference)
        lagged = recorded[n - 1 - latency] if n > latency else 100.0
        assert oracle.observed(reference) == lagged
        assert oracle.poll(n, reference)
        assert oracle.price == lagged
    assert oracle.updates == len(recorded)
    # deviation: what the oracle last recorded against what it published.
    assert oracle.deviation == pytest.approx(recorded[-1] / recorded[-1 - latency] - 1.0)


def test_zero_latency_follows_the_reference_within_the_step() -> None:
    oracle = make_oracle(threshold=0.0)
    oracle.record(120.0)
    assert oracle.observed(123.0) == 123.0  # the live price, not the recorded one
    assert oracle.poll(1, 123.0)
    assert oracle.price == 123.0


def test_latency_does_not_publish_stale_price_without_deviation() -> None:
    oracle = make_oracle(threshold=0.01, latency=2)
    for step in (1, 2):
        oracle.record(150.0)
        assert not oracle.poll(step, 150.0)  # sees the price two records back: 100
    oracle.record(150.0)
    assert oracle.poll(3, 150.0)  # now sees the first 150
    assert oracle.price == 150.0
    assert oracle.updates == 1


def _model(latency: int) -> MarketModel:
    scenario = load(
        "baseline",
        {
            **{f"protocols.{k}.params.positions": 200 for k in range(3)},
            "market.assets.ETH.oracle.latency_steps": latency,
            "market.assets.ETH.oracle.deviation_threshold": 0.0,
        },
    )
    return MarketModel(scenario, seed=3)


def test_model_zero_latency_publishes_current_reference() -> None:
    model = _model(0)
    for _ in range(5):
        model.step()
        assert model.oracle_prices["ETH"] == model.reference_prices["ETH"]


@pytest.mark.parametrize("latency", [1, 2])
def test_model_latency_lags_reference_by_latency_steps(latency: int) -> None:
    model = _model(latency)
    references = [model.reference_prices["ETH"]]
    for t in range(1, 8):
        model.step()
        references.append(model.reference_prices["ETH"])
        assert model.oracle_prices["ETH"] == references[max(0, t - latency)]
