"""The plugin passes liqnet's plugin kit."""

from fixed_rate_desk import FixedRateDesk

from liqnet.scenarios.testing import check_protocol


def test_desk_passes_the_plugin_kit() -> None:
    report = check_protocol(FixedRateDesk, steps=48)
    assert "crash world" in str(report)
