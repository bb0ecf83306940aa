"""OpenAI's Images API (generations, edits, models) on the media API's queue: routes.py for the
paths, requests.py for the bodies, batch.py for the tasks, presenters.py and errors.py for the
answers. docs/openai.md says what is and is not supported, and why."""

from darkroom.api.openai.routes import router

__all__ = ["router"]
