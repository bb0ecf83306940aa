"""How much memory a loaded pipeline takes and how much a device has left, for the engine pool's
decision to unload the least recently used model before loading another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def pipeline_bytes(pipeline: Any) -> int:
    """Bytes held by the pipeline's modules' parameters and buffers."""
    import torch

    total = 0
    for component in getattr(pipeline, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            for tensor in (*component.parameters(), *component.buffers()):
                total += tensor.numel() * tensor.element_size()
    return total


def folder_weight_bytes(folder: Path) -> int:
    """What a saved model's weights take on disk: a fair guess of what it needs loaded (an
    overestimate when it is loaded at a smaller dtype than it was saved)."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)


def device_free_bytes(device: str) -> int | None:
    """Free memory on the device: CUDA's own count, or the kernel's MemAvailable for the CPU.
    None when it cannot be told."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
