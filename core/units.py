"""Time units shared by every layer (one step is ``dt_hours`` of market time)."""

from __future__ import annotations

HOURS_PER_DAY = 24.0
"""Hours in a day."""
DAYS_PER_YEAR = 365.0
"""Days in a (non-leap) year: annual rates and volatilities are per 365 days."""
HOURS_PER_YEAR = HOURS_PER_DAY * DAYS_PER_YEAR
"""Hours in a year (8,760): converts ``dt_hours`` to the year fractions rates use."""
