"""The auction phase: keepers bark, bid, take and deal; conservation across steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tests.helpers.toy_cdp  # noqa: F401  (registers the test protocol "toy_cdp")
from liqnet.market.model import MarketModel
from liqnet.protocols.auctions import MIN_BID
from liqnet.scenarios import load

KEEPER = {"capital_usd": 5e6, "gas_cost_usd": 20.0, "gas_tolerance": 3.0, "min_profit": 0.05}


def _world(
    tmp_path: Path, keepers: list[dict], auction: str = "", gas: float = 1.0, **extra
) -> MarketModel:
    lines = [
        'name = "toy_auctions"',
        'base = "baseline"',
        "steps = 12",
        "[market.assets.DAI]",
        "price = 1.0",
        "volatility = 0.01",
        "pool_usd = 50e6",
        "[protocols.toy]",
        'type = "toy_cdp"',
        "[protocols.toy.params]",
        *[f"{k} = {v!r}" for k, v in extra.items()],
        auction,
        "[[shocks]]",
        "step = 2",
        'asset = "ETH"',
        "return = -0.3",
    ]
    if gas != 1.0:
        lines += ["[[gas_spikes]]", "step = 1", "duration_steps = 12", f"multiplier = {gas}"]
    for keeper in keepers:
        lines += ["[[keepers]]", *[f"{k} = {v!r}" for k, v in keeper.items()]]
    path = tmp_path / "toy.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = MarketModel(load(path))
    model.check_phases = True  # conservation after every phase, the auctions' included
    return model


def _run(model: MarketModel, steps: int) -> None:
    for _ in range(steps):
        model.step()


def test_lone_keeper_wins_english_auctions_at_zero_and_the_loss_is_bad_debt(tmp_path: Path) -> None:
    model = _world(tmp_path, [KEEPER])
    toy = model.protocols["toy"]
    _run(model, 5)
    book = toy.auction_book
    assert book is not None and len(book) == 10  # every vault barked after the crash
    assert not book.open.any()  # ttl (10 min) < one step: dealt the step after the bid
    # No rival: the first bid is the minimum and wins (flip.sol: bid > 0 only).
    np.testing.assert_allclose(book.raised, MIN_BID)
    assert toy.bad_debt == pytest.approx(10 * 15_000.0 - 10 * MIN_BID)
    stats = model.auction_history
    assert sum(s.zero_bid_deals for s in stats) == 10
    value = sum(s.zero_bid_collateral_usd for s in stats)
    assert value == pytest.approx(100.0 * model.oracle_prices["ETH"], rel=0.05)


def test_rival_keepers_bid_up_to_the_tab_and_dent_returns_collateral(tmp_path: Path) -> None:
    rich = {**KEEPER, "capital_usd": 1e8}
    model = _world(tmp_path, [rich, {**rich, "min_profit": 0.06}, {**rich, "min_profit": 0.07}])
    toy = model.protocols["toy"]
    _run(model, 5)
    book = toy.auction_book
    assert book is not None and len(book) == 10 and not book.open.any()
    # The lot (10 ETH at ~2,100) is worth more than the tab (16,950): bids reach it,
    # then dent leaves the owner the rest; no bad debt, the penalty is collected.
    np.testing.assert_allclose(book.raised, book.tab)
    assert (book.lot < 10.0).all() and toy.bad_debt == 0.0
    assert toy.penalties == pytest.approx(10 * 15_000.0 * 0.13)


def test_no_keeper_landing_means_no_bark_and_no_bid(tmp_path: Path) -> None:
    # Gas x30 against a tolerance of 3: each keeper lands with probability 1e-4.
    model = _world(tmp_path, [KEEPER, KEEPER], gas=30.0)
    _run(model, 6)
    book = model.protocols["toy"].auction_book
    assert book is not None and len(book) == 0
    assert sum(s.kicks for s in model.auction_history) == 0


def test_unbid_english_auction_is_restarted_and_never_deals(tmp_path: Path) -> None:
    # A keeper that lands but whose gas exceeds any lot's value barks, yet never bids.
    stingy = {**KEEPER, "gas_cost_usd": 1e6}
    model = _world(tmp_path, [stingy], auction="[protocols.toy.params.auction]\ntau_hours = 2.0")
    _run(model, 10)
    book = model.protocols["toy"].auction_book
    assert book is not None and len(book) == 10
    assert book.open.all() and (book.winner == -1).all()  # flip.sol ticks, never closes
    assert (book.restarts >= 3).all()
    assert model.protocols["toy"].bad_debt == 0.0  # nothing realised while it is open


def test_dutch_auction_clears_at_the_decayed_price(tmp_path: Path) -> None:
    auction = (
        "[protocols.toy.params.auction]\n"
        'kind = "dutch"\nbuf = 1.3\ndecay = "linear"\ntau_hours = 10.0\ntail_hours = 9.0\n'
        "cusp = 0.05\ntip_usd = 0.0\nchip = 0.0"
    )
    keeper = {**KEEPER, "latency_hours": 0.0}
    model = _world(tmp_path, [keeper], auction=auction, vaults=1)
    toy = model.protocols["toy"]
    _run(model, 12)
    book = toy.auction_book
    assert book is not None and len(book) == 1 and not book.open[0]
    events = model.events.to_frame()
    take = events[events["kind"] == "auction_take"].iloc[0]
    hours = (take["step"] - 2) * model.dt_hours  # kicked at step 2
    price = book.top[0] * (1.0 - hours / 10.0)  # abaci LinearDecrease
    # It took at the decayed price of that moment (the event logs the lot left after it).
    amount = 10.0 - take["seized_units"]
    assert take["repaid_usd"] / amount == pytest.approx(price)
    assert book.raised[0] == pytest.approx(book.tab[0])  # the tab was raised in full
    # top = 1.3 x oracle is above any keeper's value: it waited for the decay.
    assert hours >= 1.0 and price < 0.8 * book.top[0]


def test_keepers_source_the_stablecoin_on_its_pool_and_push_it_up(tmp_path: Path) -> None:
    rich = {**KEEPER, "capital_usd": 1e8}
    model = _world(tmp_path, [rich, {**rich, "min_profit": 0.06}])
    start = model.pools["DAI"].price
    _run(model, 3)
    assert model.pools["DAI"].price > start  # keepers bought DAI to bid


def test_same_seed_same_auctions(tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        model = _world(tmp_path, [KEEPER, {**KEEPER, "gas_tolerance": 1.5}], gas=2.0)
        _run(model, 8)
        book = model.protocols["toy"].auction_book
        assert book is not None
        runs.append((book.raised.copy(), book.winner.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_keepers_land_per_transaction_so_lone_bidders_win_a_share_of_lots(
    tmp_path: Path,
) -> None:
    """At gas = tolerance each bid lands with probability 1/2, drawn per keeper per
    auction: a lot goes to a lone bidder (a zero bid) when exactly one of two keepers
    lands, 1/2 of the time, and waits when neither does, so about 2/3 of deals are zero
    bids -- neither none nor all, as a per-step draw for every auction at once gave."""
    rich = {**KEEPER, "capital_usd": 1e9}
    model = _world(tmp_path, [rich, {**rich, "min_profit": 0.06}], gas=3.0, vaults=400)
    _run(model, 12)
    stats = model.auction_history
    deals = sum(s.deals for s in stats)
    zero = sum(s.zero_bid_deals for s in stats)
    assert deals >= 300
    assert 0.55 < zero / deals < 0.78
