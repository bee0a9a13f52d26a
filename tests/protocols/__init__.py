"""Tests of liqnet.protocols, one file per source module."""
