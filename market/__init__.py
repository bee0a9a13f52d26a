"""The world: prices, oracles, AMM pools, liquidators, arbitrageurs and MarketModel."""

from liqnet.market.amm import ConstantProductPool
from liqnet.market.env import LiquidityEnv
from liqnet.market.gym_vector import GymVectorEnv
from liqnet.market.model import MarketModel
from liqnet.market.oracle import Oracle
from liqnet.market.participants import Arbitrageur, Liquidator
from liqnet.market.prices import AssetDynamics, PriceProcess
from liqnet.market.vector_env import ParallelEnvBatch, VectorLiquidityEnv

__all__ = [
    "Arbitrageur",
    "AssetDynamics",
    "ConstantProductPool",
    "GymVectorEnv",
    "Liquidator",
    "LiquidityEnv",
    "MarketModel",
    "Oracle",
    "ParallelEnvBatch",
    "PriceProcess",
    "VectorLiquidityEnv",
]
