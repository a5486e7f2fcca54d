"""Device resolution and seeding, each in one place."""

from __future__ import annotations

import os
import random
from typing import Literal

import numpy as np

from .errors import UserError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str = "auto"):
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a UserError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
        return torch.device("cuda")
    raise UserError(f"device must be one of auto, cpu, cuda, got {name!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def torch_generator(seed: int, device=None):
    """A dedicated torch.Generator, so a stage's randomness does not depend on what ran before it."""
    import torch

    gen = torch.Generator(device=device or "cpu")
    gen.manual_seed(seed)
    return gen
