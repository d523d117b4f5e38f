"""mvsearch: neural-architecture search and scaling studies for MobileViT (arXiv 2110.02178)."""
from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait by spinning (libgomp's default) collapse when another process holds a
# core: on a busy 2-core machine a 2-thread proxy training ran at 10 images/s instead of 350.
# Waiting threads that sleep cost little on an idle machine and nothing like that on a busy one.
# It only takes effect before torch loads OpenMP, hence here; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mvsearch.core.errors import MvsearchError  # noqa: E402

__all__ = ["__version__", "MvsearchError"]
