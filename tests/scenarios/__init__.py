"""Tests of liqnet.scenarios, one file per source module."""
