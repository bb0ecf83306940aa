"""A webhook receiver on a free local port: it records every POST (headers and body as they
arrived) and answers 200, or what the test scripted ahead with `fail_next` / `stall_next`
(FakeServer's faults)."""

from __future__ import annotations

from tests.support.fakes.base import Answer, FakeServer, Request


class WebhookReceiver(FakeServer):
    def answer(self, request: Request) -> Answer:
        return Answer(200, b"ok", {"Content-Type": "text/plain"})

    def answer_next(self, answer: Answer) -> None:
        """The next request is answered `answer` (a redirect, a huge body, ...)."""
        with self._lock:
            self._faults.append(answer)

    def error(self, status: int) -> dict[str, str]:
        return {"error": f"receiver answered {status}"}

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/darkroom"

    @property
    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]
