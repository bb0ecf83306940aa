"""A Python client for Darkroom's media API (and the hosted service it is compatible with).

    from darkroom.client import Client

    with Client() as client:  # DARKROOM_BASE_URL and DARKROOM_API_KEY
        client.download(client.generate("a lighthouse at dusk", ar="16:9"), "lighthouse.webp")
        client.save(client.generate("waves", model="veo-3"), "waves")  # waves.mp4

`AsyncClient` offers the same methods as coroutines. See docs/client.md.
"""

from darkroom.client._async import AsyncClient
from darkroom.client._sync import Client
from darkroom.client.config import DEFAULT_MODEL
from darkroom.client.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectionFailed,
    DarkroomError,
    DownloadError,
    InsufficientBalance,
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ModelNotAllowed,
    Overloaded,
    SensitiveContent,
    TaskFailed,
    TaskNotFound,
    UnexpectedResponse,
    UnsafePrompt,
    WaitTimeout,
)
from darkroom.client.models import Model, Task, TaskPage, Track
from darkroom.client.policy import Backoff, RetryPolicy

__all__ = [
    "DEFAULT_MODEL",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Backoff",
    "Client",
    "ConfigurationError",
    "ConnectionFailed",
    "DarkroomError",
    "DownloadError",
    "InsufficientBalance",
    "InternalError",
    "InvalidRequest",
    "MethodNotFound",
    "Model",
    "ModelNotAllowed",
    "Overloaded",
    "RetryPolicy",
    "SensitiveContent",
    "Task",
    "TaskFailed",
    "TaskNotFound",
    "TaskPage",
    "Track",
    "UnexpectedResponse",
    "UnsafePrompt",
    "WaitTimeout",
]
