"""Tests of liqnet.core, one file per source module."""
