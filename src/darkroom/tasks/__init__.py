"""Tasks: the record, its states, and the store that is also the queue."""

from darkroom.tasks.model import NewTask, Task, TaskParams, TaskStatus
from darkroom.tasks.store import InsufficientFunds, QueueFull, TaskStore

__all__ = [
    "InsufficientFunds",
    "NewTask",
    "QueueFull",
    "Task",
    "TaskParams",
    "TaskStatus",
    "TaskStore",
]
