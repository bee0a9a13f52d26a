"""Tests of liqnet.analysis, one file per source module."""
