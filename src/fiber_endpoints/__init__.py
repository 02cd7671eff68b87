"""Fiber Endpoints: one LightGBM model, several endpoint stacks, one contract, measured."""

__version__ = "0.1.0"
