"""Tasks: the record, its states, and the store that is also the queue."""

from darkroom.tasks.model import NewTask, Task, TaskParams, TaskStatus
from darkroom.tasks.store import InsufficientCredits, QueueFull, TaskStore

__all__ = [
    "InsufficientCredits",
    "NewTask",
    "QueueFull",
    "Task",
    "TaskParams",
    "TaskStatus",
    "TaskStore",
]
