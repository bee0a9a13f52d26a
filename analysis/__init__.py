"""liqnet subpackage."""
