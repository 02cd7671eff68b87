"""Fiber Endpoints: one LightGBM model, several endpoint stacks, one contract, measured like-for-like."""

__version__ = "0.1.0"
