"""Built-in sweep files (``liqnet sweep NAME``)."""
