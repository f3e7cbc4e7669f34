"""dtn: a pure-Python, standards-exact Bundle Protocol v7 stack."""

__version__ = "0.1.0"
