"""The per-step time series of a world, kept in Mesa's DataCollector.

Mesa's own API sees the time series: one model reporter per column (so
``get_model_vars_dataframe()`` and ``mesa.batch_run`` work) and the same rows as the
table ``"world"``. Rows are built once per step as a list of values, which is several
times cheaper than calling a reporter (and deepcopy) per column, and wait in a list until
the table is read: appending ~100 columns one by one every step cost more than the rest
of data collection.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import mesa

from liqnet.protocols.base import LEVER_NAMES

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel

TIMESERIES_TABLE = "world"
"""Name of the DataCollector table holding the per-step time series."""
PROTOCOL_COLUMNS = (
    "equity",
    "cash",
    "bad_debt",
    "revenue",
    "liquidated",
    "shortfall",
    "credit_lent",
    "credit_borrowed",
    "credit_losses",
)
"""Each protocol's balance-sheet columns (``<id>.<column>``), before its levers and
exposures."""


def column_names(model: MarketModel) -> list[str]:
    """Names of the time-series columns, in the order of :func:`row_values`."""
    names = ["step", "regime", "gas_multiplier", "cascade_rounds", "liquidations"]
    for name in model.asset_names:
        names += [f"{name}.reference", f"{name}.pool", f"{name}.oracle"]
    for pid in model.protocols:
        names += [f"{pid}.{column}" for column in PROTOCOL_COLUMNS]
        names += [f"{pid}.lever.{lever}" for lever in LEVER_NAMES]
        names += [f"{pid}.exposure.{name}" for name in model.asset_names]
    return names


def row_values(model: MarketModel, equity: list[float] | None = None) -> list[float]:
    """The world's time-series row now, in the order of :func:`column_names`
    (``equity``: every protocol's equity as just read, else read here)."""
    if equity is None:
        equity = [protocol.equity() for protocol in model.protocols.values()]
    rounds = model.cascade_history[-1] if model.cascade_history else []
    values = [
        model.step_index,
        model.price_process.regime,
        model.gas_multiplier,
        len(rounds),
        sum(r.liquidations for r in rounds),
    ]
    for name in model.asset_names:
        values += [model.reference_prices[name], model.pools[name].price, model.oracle_prices[name]]
    for (pid, protocol), protocol_equity in zip(model.protocols.items(), equity, strict=True):
        exposures = protocol.asset_exposures()
        values += [
            protocol_equity,
            protocol.cash,
            protocol.realised_bad_debt,
            protocol.revenue,
            protocol.liquidated_usd_step,
            protocol.liquidity_shortfall,
            protocol.credit_lent,
            protocol.credit_borrowed,
            model.credit_losses[pid],
            *model.last_levers[pid].tolist(),
            *[exposures.get(name, 0.0) for name in model.asset_names],
        ]
    return values


class TimeSeries:
    """One world's rows, one per step, reaching the DataCollector when it is read.

    Args:
        model: The world whose state each row records.
    """

    def __init__(self, model: MarketModel) -> None:
        self.model = model
        columns = column_names(model)
        self._collector = mesa.DataCollector(
            model_reporters={name: partial(_row_value, index=i) for i, name in enumerate(columns)},
            tables={TIMESERIES_TABLE: columns},
        )
        self._pending: list[list[float]] = []

    def collect(self, equity: list[float] | None = None) -> None:
        """Record the world's state now as one row (see :func:`row_values`)."""
        self._pending.append(row_values(self.model, equity))

    @property
    def datacollector(self) -> mesa.DataCollector:
        """The DataCollector with every row recorded so far."""
        if self._pending:
            collector = self._collector
            table = collector.tables[TIMESERIES_TABLE]
            by_column = list(zip(*self._pending, strict=True))
            for name, values in zip(table, by_column, strict=True):
                table[name].extend(values)
                collector.model_vars[name].extend(values)
            self._pending = []
        return self._collector


def _row_value(model: MarketModel, index: int) -> float:
    """Mesa model reporter of one time-series column (the fast path batches whole rows)."""
    return row_values(model)[index]
