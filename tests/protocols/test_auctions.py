"""Auction book mechanics and the abaci.sol price curves."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

import tests.helpers.toy_cdp as toy
from liqnet.protocols.auctions import (
    AuctionBook,
    AuctionFills,
    DutchAuctionParams,
    EnglishAuctionParams,
    dutch_price,
)


def test_abaci_curves() -> None:
    top = np.array([1000.0])
    t = np.array([0.0, 0.5, 1.0, 2.0])
    linear = DutchAuctionParams(decay="linear", tau_hours=2.0)
    np.testing.assert_allclose(dutch_price(linear, top, t), [1000, 750, 500, 0])
    # StairstepExponentialDecrease: cut^floor(t / step); 0.99 per 90 s.
    stairs = DutchAuctionParams(decay="stairstep", cut=0.99, step_hours=0.025)
    np.testing.assert_allclose(
        dutch_price(stairs, top, np.array([0.0, 0.024, 0.025, 0.049, 1.0])),
        [1000, 1000, 990, 990, 1000 * 0.99**40],
    )
    expo = DutchAuctionParams(decay="exponential", cut=0.5, step_hours=1.0)
    np.testing.assert_allclose(
        dutch_price(expo, top, np.array([0.0, 0.5, 2.0])), [1000, 1000 * 0.5**0.5, 250]
    )


def test_kick_books_rows_and_locked_units() -> None:
    book = AuctionBook(("ETH", "BTC"), EnglishAuctionParams())
    ids = book.kick(
        asset="BTC",
        lot=[1.0, 2.0],
        tab=[113.0, 226.0],
        debt=[100.0, 200.0],
        slot=[7, 9],
        now=3.0,
        oracle_price=150.0,
    )
    np.testing.assert_array_equal(ids, [0, 1])
    assert book.locked_units() == {"ETH": 0.0, "BTC": 3.0}
    assert book.outstanding_tab() == pytest.approx(339.0)
    np.testing.assert_allclose(book.end, 3.0 + 6.0)  # flip tau: 6 h in March 2020
    assert (book.winner == -1).all() and np.isinf(book.tic).all()
    fills = AuctionFills()
    book.raised[0] = 50.0
    fills.close(book, np.array([0]))
    assert book.locked_units()["BTC"] == 2.0
    np.testing.assert_allclose(fills.shortfall, [50.0])
    np.testing.assert_allclose(fills.surplus, [0.0])
    dutch = AuctionBook(("ETH",), DutchAuctionParams(buf=1.2))
    dutch.kick(
        asset="ETH", lot=[1.0], tab=[10.0], debt=[9.0], slot=[0], now=0.0, oracle_price=100.0
    )
    assert dutch.top[0] == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"kind": "english", "beg": 0.0}, "beg"),
        ({"kind": "dutch", "cusp": 1.5}, "cusp"),
        ({"kind": "sealed"}, "auction"),
    ],
)
def test_bad_auction_tables_name_the_field(table: dict, field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        toy.ToyCdpParams.model_validate({"auction": table})
    assert toy.ToyCdpParams.model_validate({"auction": {}}).auction.kind == "english"
