"""Tasks: the record, its states, and the store that is also the queue."""

from darkroom.tasks.model import NewTask, Task, TaskParams, TaskStatus
from darkroom.tasks.store import (
    Idempotency,
    IdempotencyMismatch,
    InsufficientFunds,
    KeyLimitReached,
    QueueFull,
    TaskStore,
)

__all__ = [
    "Idempotency",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "KeyLimitReached",
    "NewTask",
    "QueueFull",
    "Task",
    "TaskParams",
    "TaskStatus",
    "TaskStore",
]
