"""presrm: process-based self-rewarding language models, with every step-level score in DuckDB."""

__version__ = "0.1.0"
