"""Tests of liqnet.agents, one file per source module."""
