"""Tests of liqnet.market, one file per source module."""
