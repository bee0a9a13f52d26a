"""The liqnet test suite; folders mirror the package (tests/market -> liqnet.market, ...)."""
