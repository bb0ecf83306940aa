"""Workers: claim tasks from the store, run them through engines, store the images."""

from darkroom.worker.loop import Worker
from darkroom.worker.pool import EnginePool
from darkroom.worker.wakeup import Wakeup

__all__ = ["EnginePool", "Wakeup", "Worker"]
