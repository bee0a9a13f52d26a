"""Tests of liqnet.protocols.options, one file per source module."""
