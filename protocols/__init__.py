"""Protocol models (lending, perpetuals, options, ...) and their registry."""

from liqnet.protocols.base import (
    FEATURE_NAMES,
    LEVER_NAMES,
    LiquidationOffer,
    LiquidationOutcome,
    Protocol,
    ProtocolParams,
)
from liqnet.protocols.lending import LendingPool
from liqnet.protocols.perp import PerpExchange
from liqnet.protocols.rates import KinkedRateModel
from liqnet.protocols.registry import available, get_protocol_class, register

__all__ = [
    "FEATURE_NAMES",
    "LEVER_NAMES",
    "KinkedRateModel",
    "LendingPool",
    "LiquidationOffer",
    "LiquidationOutcome",
    "PerpExchange",
    "Protocol",
    "ProtocolParams",
    "available",
    "get_protocol_class",
    "register",
]
