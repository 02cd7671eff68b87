"""The benchmark: start stacks, check parity, run protocols, store raw per-request results."""
