"""liqnet: multi-agent, cross-protocol liquidity negotiation in simulated crypto markets.

The subpackages are the layers of ``docs/architecture.md``: ``liqnet.core`` (shared
types), ``liqnet.protocols``, ``liqnet.market``, ``liqnet.agents``, ``liqnet.analysis``
and ``liqnet.scenarios`` (files, Ray and the command line). This file lives in
``core/_root`` because the repository root is the layout (see ``pyproject.toml``).
"""

from liqnet.core import __version__

__all__ = ["__version__"]
