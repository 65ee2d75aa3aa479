"""Shipped derenderer weights (``derender.pt``), a package so wheels carry the file."""
