"""Where torch work runs: the GPU when torch sees one, else the CPU; CONVOFORGE_DEVICE overrides."""

from __future__ import annotations

import os

from convoforge.errors import ConvoforgeError


def torch_device() -> str:
    """'cuda' or 'cpu' for models, generation and training (CONVOFORGE_DEVICE=auto|cpu|cuda|cuda:N)."""
    import torch

    chosen = os.environ.get("CONVOFORGE_DEVICE", "auto").strip().lower() or "auto"
    if chosen == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if chosen != "cpu" and not (chosen == "cuda" or chosen.startswith("cuda:")):
        raise ConvoforgeError(f"CONVOFORGE_DEVICE must be auto, cpu, cuda or cuda:N, not {chosen!r}")
    if chosen.startswith("cuda") and not torch.cuda.is_available():
        raise ConvoforgeError(f"CONVOFORGE_DEVICE={chosen} but torch sees no GPU")
    return chosen
