"""A MakerDAO-like CDP: vaults lock collateral and mint a stablecoin (``type = "cdp"``).

Follows makerdao/dss (``src/vat.sol``, ``jug.sol``, ``cat.sol``, ``dog.sol``, ``vow.sol``,
``flop.sol``):

- Vaults (``protocols.cdp_vaults``) hold collateral ``ink`` and normalised debt ``art``;
  debt is ``art x rate``. Minting (vat.sol ``frob`` with ``dart > 0``) must keep the
  vault safe (``ink x price / mat >= debt``) and the type's debt under its ceiling
  ``line``; the minted stablecoin goes to the external account ``"borrowers"``.
- Stability fee (jug.sol ``drip``): ``rate`` grows by ``duty ** seconds``, duty the
  per-second rate of the annual fee, and the fee income goes to the surplus (vat.sol
  ``fold``: no stablecoin moves).
- Liquidation goes through auctions (``bark`` / ``settle_auctions``), never the
  cascade's fixed-price sale: :meth:`CdpProtocol.liquidation_candidates` is empty.
- Losses: surplus buffer first, then debt auctions of new MKR (``protocols.cdp_vow``).

Stablecoin accounting (/work/wt/CDP_CONTRACT.md): the stablecoin is a market asset;
``held_units()[stablecoin]`` is minus the stablecoin others hold (``outstanding``). The
protocol marks it at par. Invariant (vat.sol ``debt = sum(Art x rate) + vice``):
``outstanding + surplus = vault debt + debt in auctions not yet raised + bad debt``.

Borrower behaviour (issue 15 item 4): each vault's owner is asleep (never acts) with
probability ``asleep_share``; awake owners whose ratio falls below
``top_up_trigger x mat`` restore ``top_up_target x mat`` at once, by repaying
stablecoin they hold (``repay_share`` of owners) or by adding collateral.

Defaults: ETH-A of March 2020 where dss or Maker's governance gives them (liquidation
ratio 150%, penalty 13%, flop.sol's pad / ttl / tau); the vault book, fee, ceiling,
surplus, hump and the behaviour shares are chosen (``cdp_params`` says which).
"""

from __future__ import annotations

import mesa
import numpy as np

from liqnet.protocols import cdp_liquidation
from liqnet.protocols.auctions import AuctionBook, AuctionFills
from liqnet.protocols.base import LiquidationOffer, LiquidationOutcome, Protocol, bounded_step
from liqnet.protocols.cdp_params import CdpParams
from liqnet.protocols.cdp_vaults import VaultBook
from liqnet.protocols.cdp_vow import Vow
from liqnet.protocols.positions import NO_SLOTS

_DAYS_PER_YEAR = 365.0


class CdpProtocol(Protocol[CdpParams]):
    """Maker-like CDP minting ``params.stablecoin`` against collateral vaults.

    Balance sheet (stablecoin at par): cash + vault debt (capped by collateral value)
    + debt in auctions still to raise - stablecoin outstanding, plus the MKR backstop's
    cover of losses (debt auctions recapitalise by dilution), so equity is the surplus
    less the losses (bad debt, underwater shortfall) beyond what the backstop covers.
    """

    type_name = "cdp"
    Params = CdpParams
    params: CdpParams

    def __init__(self, model: mesa.Model, protocol_id: str, params: CdpParams) -> None:
        super().__init__(model, protocol_id, params)
        p = params
        assets = self.world.asset_names
        unknown = sorted(set(p.referenced_assets()) - set(assets))
        if unknown:
            raise ValueError(
                f"protocol {protocol_id!r}: assets {unknown} are not market assets "
                f"(allowed: {list(assets)})"
            )
        self.stable = p.stablecoin
        self.books = {a: VaultBook(a, c) for a, c in p.collateral.items()}
        self.vow = Vow(p.flop, p.surplus_usd, p.hump_usd)
        self.auction_book = AuctionBook(tuple(self.books), p.auction)
        self.outstanding = 0.0  # stablecoin held by others (minus held_units()[stable])
        self.ratios = p.ratios()
        self._ratio_scale = 1.0
        # Counters (cumulative), so tests and reports see the mechanisms fire.
        self.minted = 0.0
        self.burned = 0.0
        self.refused_usd = 0.0  # minting refused by the debt ceiling
        self.top_ups = 0  # awake owners who added collateral
        self.repays = 0  # awake owners who repaid debt
        self.fees = 0.0
        self.barked = 0  # vaults sent to auction
        self.auction_sold: dict[str, float] = {}  # collateral units paid to keepers
        self.auction_returned: dict[str, float] = {}  # collateral units back to owners
        self.incentives = 0.0  # keeper incentives minted (Dutch tip + chip)
        self.stable_bought = 0.0  # stablecoin repayers bought on its pool (cumulative)
        self._to_buy = 0.0  # stablecoin repaid this step that repayers still mean to buy
        self._seed_vaults(self.world.rng_for(f"protocol:{protocol_id}:init"))

    # -- set-up --------------------------------------------------------------------------
    def _owners(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Who sleeps and who repays (1.0 / 0.0 columns), for ``n`` new vaults."""
        p = self.params
        asleep = (rng.random(n) < p.asleep_share).astype(float)
        repays = (rng.random(n) < p.repay_share).astype(float)
        return asleep, repays

    def _ratios(self, rng: np.random.Generator, n: int, mat: float) -> np.ndarray:
        """Opening collateral ratios: ``mat x (1 + scale x (h - 1))``, h from the book's
        distribution (>= 1), the scale fitted once so the seeded book holds
        ``collateral_usd``."""
        health = self.ratios.sample(rng, n, floor=1.0)
        return mat * (1.0 + self._ratio_scale * (health - 1.0))

    def _seed_vaults(self, rng: np.random.Generator) -> None:
        p = self.params
        shares = np.array([c.share for c in p.collateral.values()])
        shares = shares / shares.sum()
        counts = np.maximum(1, np.round(p.vaults * shares).astype(int))
        drawn = []
        for book, count, share in zip(self.books.values(), counts, shares, strict=True):
            weights = rng.lognormal(0.0, p.position_size_dispersion, count)
            debt = p.debt_usd * share * weights / weights.sum()
            health = self.ratios.sample(rng, count, floor=1.0)
            drawn.append((book, debt, health, *self._owners(rng, count)))
        # One scale of the ratios' excess over mat for all types: sum(debt x ratio) is
        # then exactly collateral_usd, and no vault opens below mat.
        floor = sum(float(d.sum()) * b.liquidation_ratio for b, d, *_ in drawn)
        excess = sum(float((d * (h - 1.0)).sum()) * b.liquidation_ratio for b, d, h, *_ in drawn)
        if excess <= 0.0:
            raise ValueError(
                f"protocol {self.protocol_id!r}: ratio_distribution puts every vault at the "
                "liquidation ratio, so no book holds collateral_usd above it"
            )
        self._ratio_scale = (p.collateral_usd - floor) / excess
        world = self.world
        for book, debt, health, asleep, repays in drawn:
            price = world.oracle_prices[book.asset]
            ratio = book.liquidation_ratio * (1.0 + self._ratio_scale * (health - 1.0))
            book.add(debt * ratio / price, debt, asleep, repays)  # rate starts at 1
            world.transfer("borrowers", self, asset=book.asset, units=book.total_ink)
            book.rebuild()
        # The surplus is stablecoin the protocol already owns (past fees): the rest of
        # the debt is outstanding, held by the borrowers.
        self._mint(p.debt_usd - p.surplus_usd)

    # -- the stablecoin ------------------------------------------------------------------
    def _mint(self, units: float) -> None:
        """Issue ``units`` of the stablecoin to the borrowers."""
        if units:
            self.world.transfer(self, "borrowers", asset=self.stable, units=units)
            self.outstanding += units
            self.minted += max(units, 0.0)

    def _burn(self, units: float, payer: str = "borrowers") -> None:
        """Take back ``units`` of the stablecoin from ``payer`` and retire them."""
        if units:
            self.world.transfer(payer, self, asset=self.stable, units=units)
            self.outstanding -= units
            self.burned += units

    # -- balance sheet -------------------------------------------------------------------
    def vault_debt(self) -> float:
        """Debt of all vaults, stable units."""
        return sum(b.debt for b in self.books.values())

    def underwater_shortfall(self) -> float:
        """Vault debt above its collateral's value (vaults with ratio below 1)."""
        prices = self.world.oracle_prices
        return sum(b.underwater_shortfall(prices[a]) for a, b in self.books.items())

    def auction_receivable(self) -> float:
        """Debt in open auctions not yet raised (English: beyond the standing bids)."""
        book = self.auction_book
        assert book is not None
        got = book.bid if book.english else book.raised
        return float((book.debt[book.open] - got[book.open]).sum())

    def auction_shortfall(self) -> float:
        """Debt in open auctions beyond the value of their lots at the oracle."""
        book = self.auction_book
        assert book is not None
        rows = book.open
        if not rows.any():
            return 0.0
        got = book.bid if book.english else book.raised
        prices = np.array([self.world.oracle_prices[a] for a in book.assets])
        value = book.lot[rows] * prices[book.asset[rows]]
        return float(np.maximum(book.debt[rows] - got[rows] - value, 0.0).sum())

    def unrealised_losses(self) -> float:
        """Underwater vault shortfall and open auctions' shortfall (not yet written off)."""
        return self.underwater_shortfall() + self.auction_shortfall()

    def losses(self) -> float:
        """Bad debt not yet covered plus the losses carried (stable units)."""
        return self.vow.sin + self.unrealised_losses()

    def backstop_cover(self) -> float:
        """Losses the MKR backstop covers: at most what debt auctions can raise."""
        return min(self.losses(), self.vow.backstop())

    def own_equity(self) -> float:
        """Cash + surplus - losses + the backstop's cover of them.

        Debt auctions recapitalise the system by diluting MKR (the design: MKR holders
        are the loss absorbers after the surplus), so losses up to MKR's market cap at
        the lots' discount are not a loss of the protocol's own equity; beyond it they
        are, and the CDP defaults.
        """
        return self.cash + self.vow.surplus - self.losses() + self.backstop_cover()

    def total_assets(self) -> float:
        """Cash, vault debt and debt in auctions at face value, and the surplus."""
        return self.cash + self.vault_debt() + self.auction_receivable() + self.vow.surplus

    def held_units(self) -> dict[str, float]:
        """Vault collateral per asset; minus the stablecoin others hold."""
        book = self.auction_book
        assert book is not None
        locked = book.locked_units()
        held = {a: b.total_ink + locked[a] for a, b in self.books.items()}
        held[self.stable] = -self.outstanding
        return held

    def asset_exposures(self) -> dict[str, float]:
        """USD of collateral locked and of stablecoin owed (at par: Maker's accounting)."""
        prices = self.world.oracle_prices
        held = self.held_units()
        exposures = {a: held[a] * prices[a] for a in self.books}
        exposures[self.stable] = -self.outstanding
        return exposures

    def idle_liquidity(self) -> float:
        """Cash (the CDP holds none of its own: it mints what it lends)."""
        return max(0.0, self.cash)

    # -- levers --------------------------------------------------------------------------
    def apply_levers(self, levers: np.ndarray) -> None:
        """``risk`` moves every liquidation ratio (+ tightens), ``price`` every fee."""
        p = self.params
        for book in self.books.values():
            book.liquidation_ratio = bounded_step(
                book.liquidation_ratio, levers[0], p.risk_step, *p.liquidation_ratio_bounds
            )
            book.stability_fee = bounded_step(
                book.stability_fee, levers[1], p.price_step, *p.stability_fee_bounds
            )

    # -- accrual -------------------------------------------------------------------------
    def accrue(self, dt_years: float) -> None:
        """jug.sol drip per type (rate grows, fees fold into the surplus), then the vow.

        ``rate x= (1 + fee) ** dt_years`` equals jug's ``rpow(duty, seconds)`` with
        ``duty = (1 + fee) ** (1 / SECONDS_PER_YEAR)`` (to round-off; tested).
        """
        for book in self.books.values():
            growth = (1.0 + book.stability_fee) ** dt_years
            fee = book.total_art * book.rate * (growth - 1.0)
            book.rate *= growth
            self.vow.surplus += fee  # vat.sol fold: the vow's dai grows with the debt
            self.fees += fee
            self.revenue += fee
        self.run_vow()

    def now_hours(self) -> float:
        """Market time elapsed, hours (the clock of auctions and the debt queue)."""
        return self.world.step_index * self.world.dt_hours

    def run_vow(self) -> None:
        """Release queued bad debt, heal it from the surplus, then debt auctions; flap."""
        vow = self.vow
        now = self.now_hours()
        vow.flog(now)
        vow.heal()
        vow.kick_flops(now)
        raised = vow.deal_flops(now)
        # MKR buyers (the protocol's owners) pay the stablecoin; it is retired.
        self._burn(raised, payer="owners")
        sold = vow.flap()
        if sold:
            # Surplus sold for MKR to burn: the stablecoin goes to the MKR sellers.
            self.world.transfer(self, "owners", asset=self.stable, units=sold)
            self.outstanding += sold

    def recognise_bad_debt(self, amount: float) -> None:
        """Book ``amount`` of bad debt: queued for the surplus, then the debt auctions."""
        if amount > 0.0:
            self.realised_bad_debt += amount
            self.vow.fess(amount, self.now_hours())

    # -- users ---------------------------------------------------------------------------
    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Owners close and open vaults (batched churn); awake owners top up every step."""
        days = dt_years * _DAYS_PER_YEAR
        churn = self.churn_days(days, self.params.churn_interval_hours)
        if churn:
            for asset in self.books:
                self._churn(asset, churn, rng)
        for asset in self.books:
            self.top_up(asset)

    def _churn(self, asset: str, days: float, rng: np.random.Generator) -> None:
        p = self.params
        book = self.books[asset]
        n_close = rng.poisson(p.vault_turnover_per_day * days * book.positions.count)
        closed = book.positions.sample_active(rng, n_close)
        if closed.size:
            owed = float(book.positions["art"][closed].sum()) * book.rate
            units = float(book.positions["ink"][closed].sum())
            book.close(closed)
            self._burn(owed)
            self.world.transfer(self, "borrowers", asset=asset, units=units)
        share = p.collateral[asset].share / sum(c.share for c in p.collateral.values())
        n_new = rng.poisson(p.vault_turnover_per_day * days * p.vaults * share)
        if n_new and not self.defaulted:
            mean_debt = p.debt_usd / p.vaults
            debt = mean_debt * rng.lognormal(
                -0.5 * p.position_size_dispersion**2, p.position_size_dispersion, n_new
            )
            ratio = self._ratios(rng, n_new, book.liquidation_ratio)
            ink = debt * ratio / self.world.oracle_prices[asset]
            self.open_vaults(asset, ink, debt, *self._owners(rng, n_new))

    def open_vaults(
        self,
        asset: str,
        ink: np.ndarray,
        debt: np.ndarray,
        asleep: np.ndarray,
        repays: np.ndarray,
    ) -> np.ndarray:
        """Lock ``ink`` and mint ``debt`` per new vault (vat.sol frob); returns the slots.

        A vault that would open unsafe is refused (``Vat/not-safe``), and so are those
        past the type's debt ceiling (``Vat/ceiling-exceeded``, in order of arrival);
        refused debt is counted in ``refused_usd``.
        """
        book = self.books[asset]
        price = self.world.oracle_prices[asset]
        safe = ink * price >= debt * book.liquidation_ratio
        room = max(0.0, book.debt_ceiling - book.debt)
        fits = safe & (np.cumsum(np.where(safe, debt, 0.0)) <= room)
        self.refused_usd += float(debt[~fits].sum())
        if not fits.any():
            return NO_SLOTS
        slots = book.add(ink[fits], debt[fits] / book.rate, asleep[fits], repays[fits])
        self.world.transfer("borrowers", self, asset=asset, units=float(ink[fits].sum()))
        self._mint(float(debt[fits].sum()))
        return slots

    def top_up(self, asset: str) -> int:
        """Awake owners below ``top_up_trigger x mat`` restore ``top_up_target x mat``.

        Repayers pay stablecoin back (it is retired); the others lock more collateral.
        Returns how many owners acted.
        """
        p = self.params
        book = self.books[asset]
        price = self.world.oracle_prices[asset]
        slots = book.near_limit(price, p.top_up_trigger)
        if slots.size == 0:
            return 0
        columns = book.positions.columns
        ink, art = columns["ink"][slots], columns["art"][slots]
        target = p.top_up_target * book.liquidation_ratio
        repays = columns["repays"][slots] > 0.0
        new_art = np.where(repays, np.minimum(art, ink * price / (target * book.rate)), art)
        new_ink = np.where(repays, ink, np.maximum(ink, art * book.rate * target / price))
        repaid = float((art - new_art).sum()) * book.rate
        added = float((new_ink - ink).sum())
        book.set(slots, new_ink, new_art)
        self._burn(repaid)
        self._to_buy += repaid
        self.world.transfer("borrowers", self, asset=asset, units=added)
        n_repay = int(np.count_nonzero(repays))
        self.repays += n_repay
        self.top_ups += slots.size - n_repay
        return int(slots.size)

    # -- repayers' purchases -------------------------------------------------------------
    def hedge_orders(self) -> dict[str, float]:
        """Stablecoin the repaying owners buy on its pool this round (negative: a buy).

        They replace what they repaid, paying at most ``repay_max_price``: on a
        constant-product pool of ``u`` units at price ``p`` that is
        ``u (1 - sqrt(p / max_price))`` units; the rest they had.
        """
        want, self._to_buy = self._to_buy, 0.0
        if want <= 0.0 or self.defaulted:
            return {}
        world = self.world
        price, units = world.pool_price(self.stable), world.pool_units(self.stable)
        cap = self.params.repay_max_price
        room = units * (1.0 - (price / cap) ** 0.5) if price < cap else 0.0
        buy = min(want, room)
        return {self.stable: -buy} if buy > 0.0 else {}

    def on_hedge_fill(self, asset: str, units: float, usd: float) -> None:
        """The repayers' purchase filled: they pay its USD and keep its stablecoin."""
        self.cash += usd  # the world's exchange with the pool, on the owners' behalf
        self.outstanding -= units
        self.world.transfer("borrowers", self, usd=-usd)
        self.world.transfer(self, "borrowers", asset=asset, units=units)
        self.outstanding += units
        self.stable_bought += units

    # -- liquidations --------------------------------------------------------------------
    def bark(self) -> int:
        """Send unsafe vaults to auction (``protocols.cdp_liquidation.bark``)."""
        return cdp_liquidation.bark(self)

    def settle_auctions(self, fills: AuctionFills) -> None:
        """Book the keepers' fills (``protocols.cdp_liquidation.settle``)."""
        cdp_liquidation.settle(self, fills)

    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """None: vaults are liquidated by auctions (``bark``), not the cascade's sale."""
        return []

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Never called: the CDP offers no fixed-price liquidations."""
        raise NotImplementedError("a CDP's vaults are liquidated by auctions (bark)")

    # -- observation ---------------------------------------------------------------------
    def feature_values(self) -> dict[str, float]:
        """Balance-sheet ratios and parameters for the observation vector.

        ``risk_parameter`` is ``1 / mat`` (the liquidation threshold it amounts to, as
        a lending pool's), ``price_parameter`` the mean stability fee; ``utilization``
        is debt over the debt ceilings.
        """
        assets = max(self.total_assets(), 1.0)
        books = list(self.books.values())
        ceiling = sum(b.debt_ceiling for b in books)
        return {
            "equity_to_assets": self.equity() / assets,
            "cash_to_assets": self.cash / assets,
            "utilization": min(1.0, self.vault_debt() / ceiling) if ceiling > 0 else 1.0,
            "liquidity_shortfall": self.liquidity_shortfall / assets,
            "reserves_to_assets": self.vow.surplus / assets,
            "bad_debt_to_assets": self.realised_bad_debt / assets,
            "risk_parameter": sum(1.0 / b.liquidation_ratio for b in books) / len(books),
            "price_parameter": sum(b.stability_fee for b in books) / len(books),
            "liquidated_to_assets": self.liquidated_usd_step / assets,
            "credit_lent_to_assets": self.credit_lent / assets,
            "credit_borrowed_to_assets": self.credit_borrowed / assets,
        }
