"""The API bench's baseline: a bare FastAPI endpoint on the same server stack (uvicorn, uvloop)
that parses a JSON body and answers a task-shaped object, with no key check, no database and no
storage. What Darkroom adds on top of this is what the bench shows.

    python -m uvicorn bench.bare:app --workers N   (from the repository root)
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/bare")
async def bare(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse(
        {
            "code": 0,
            "id": "6880f043e6060500018821de",
            "model": body.get("model"),
            "prompt": body.get("prompt"),
            "created_at": int(time.time()),
            "status": "idle",
            "url": None,
        }
    )
