"""Rendering a :class:`~liqnet.market.env.LiquidityEnv`: a text table or an RGB figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel


def render_table(model: MarketModel, agents: list[str], horizon: int) -> str:
    """Step, prices and gas, then per protocol equity, cash, shortfall and default."""
    prices = "  ".join(f"{a} {model.reference_prices[a]:,.2f}" for a in model.asset_names)
    lines = [
        f"step {model.step_index}/{horizon}  {prices}  gas x{model.gas_multiplier:g}",
        f"{'protocol':<16}{'equity':>16}{'cash':>16}{'shortfall':>14}  defaulted",
    ]
    for agent in agents:
        p = model.protocols[agent]
        lines.append(
            f"{agent:<16}{p.equity():>16,.0f}{p.cash:>16,.0f}"
            f"{p.liquidity_need():>14,.0f}  {'yes' if p.defaulted else 'no'}"
        )
    return "\n".join(lines)


def render_figure(
    model: MarketModel, agents: list[str], scale: dict[str, float], price_history: np.ndarray
) -> np.ndarray:
    """A ``uint8`` (H, W, 3) image: prices over initial, and equity over initial assets.

    Args:
        model: The world.
        agents: Protocols to show, in order.
        scale: Each protocol's initial total assets.
        price_history: (steps, assets) reference prices divided by the initial ones.
    """
    # Imported here: most environments never render, and matplotlib is slow to load.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=80)
    canvas = FigureCanvasAgg(fig)
    prices_ax, equity_ax = fig.subplots(1, 2)
    for k, asset in enumerate(model.asset_names):
        prices_ax.plot(price_history[:, k], label=asset)
    prices_ax.set_title(f"reference / initial (step {model.step_index})", fontsize=8)
    prices_ax.legend(fontsize=7)
    protocols = [model.protocols[a] for a in agents]
    equity = [p.equity() / scale[a] for a, p in zip(agents, protocols, strict=True)]
    colours = ["tab:red" if p.defaulted else "tab:blue" for p in protocols]
    equity_ax.bar(agents, equity, color=colours)
    equity_ax.set_title("equity / initial assets", fontsize=8)
    equity_ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    fig.clear()  # drawn and copied: drop the artists now (no pyplot registry to close)
    return image
