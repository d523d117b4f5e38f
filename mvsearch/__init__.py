"""mvsearch: neural-architecture search and scaling studies for MobileViT (arXiv 2110.02178)."""
from __future__ import annotations

__version__ = "0.1.0"

from mvsearch.errors import MvsearchError  # noqa: E402

__all__ = ["__version__", "MvsearchError"]
