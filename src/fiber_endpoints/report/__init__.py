"""The report: Markdown tables and PNG plots from raw results files only (never a rerun)."""
