"""The `demo` engine: `make serve`'s real picture where the Hugging Face hub can be reached, and
the random-weight `tiny` pipeline where it cannot, so that the demo always works and says what
it draws with.

    [models."google-imagen-3"]
    engine = "demo"
    native_size = 1024        # the sizes it answers (the spec's for the ratio)
    hub_model = "stabilityai/sd-turbo"   # what DARKROOM_DEMO_MODEL=auto means (the default)
    draw_size = 512           # the side the model draws at; results are resized to the sizes

On its first load in a worker it asks the hub once, briefly (hub.py): reachable, it downloads
the model into huggingface_hub's cache (once; progress bars on the console) and loads it with
the diffusers engine (`from_pretrained` on the folder, on the GPU when one is present); not
reachable, it uses the cached copy if there is one in full, else falls back to the tiny
pipeline. A model that downloads but does not load falls back too. A fallback is logged once
and recorded for the API (demo_status.py: `demo: "random weights"` on `/v1/media/models`);
tasks never fail because of it. `DARKROOM_DEMO_MODEL=tiny` skips the hub altogether.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from darkroom.engines.base import BatchMonitor, Engine, Job, Outcome
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.local.demo_options import DemoOptions, demo_choice, hub_id_for
from darkroom.engines.local.demo_status import DemoStatus, clear_status, write_status
from darkroom.engines.local.families import Family
from darkroom.engines.local.hub import HubUnavailable, Snapshot, fetch_pipeline
from darkroom.engines.local.options import DiffusersOptions, TinyOptions
from darkroom.engines.local.pipeline import DiffusersEngine
from darkroom.engines.local.steps import is_out_of_memory
from darkroom.engines.local.tiny import TinyEngine
from darkroom.engines.sizes import RATIOS, nearest_ratio, size_for

log = structlog.get_logger("darkroom.engines")

_announced: set[tuple[str, str]] = set()  # (model, source): said once per process


def open_engine(spec: ModelSpec, data_dir: Path) -> DemoEngine:
    return DemoEngine(spec, DemoOptions.of(spec), data_dir)


class DemoEngine(Engine):
    """Chooses its engine on first load, then hands every call to it."""

    holds_weights = True

    def __init__(self, spec: ModelSpec, options: DemoOptions, data_dir: Path) -> None:
        self.spec = spec
        self.options = options
        self.data_dir = data_dir
        self.choice = demo_choice()
        self.hub_id = hub_id_for(self.choice, options)
        self.inner: Engine | None = None
        if self.hub_id is None:  # known without asking anyone: say so from the start
            self._record(None, "DARKROOM_DEMO_MODEL=tiny")
        else:
            clear_status(data_dir, spec.id)  # an earlier run's choice no longer holds

    @property
    def device(self) -> str | None:
        return self.inner.device if self.inner is not None else "cpu"

    async def load(self) -> None:
        if self.inner is not None:
            await self.inner.load()
            return
        engine, reason = await self._hub_engine()
        if engine is None:
            engine = TinyEngine(self.spec, TinyOptions(), self.data_dir / "models")
            await engine.load()
        self.inner = engine
        self._record(engine if isinstance(engine, HubModelEngine) else None, reason)

    async def _hub_engine(self) -> tuple[HubModelEngine | None, str]:
        """The hub model's engine, loaded; else None and why not."""
        if self.hub_id is None:
            return None, "DARKROOM_DEMO_MODEL=tiny"
        log.info("demo model: looking for it on the hub", model=self.spec.id, hub=self.hub_id)
        try:
            snapshot = await asyncio.to_thread(fetch_pipeline, self.hub_id)
        except HubUnavailable as exc:
            return None, str(exc)
        except Exception as exc:  # a download cut off for good, a refusing proxy, a full disk
            return None, f"{self.hub_id} could not be downloaded ({type(exc).__name__}: {exc})"
        engine = HubModelEngine(self.spec, self.options, snapshot)
        try:
            await engine.load()
        except Exception as exc:
            if is_out_of_memory(exc):
                raise  # the pool makes room and loads again
            await engine.close()
            return None, f"{self.hub_id} did not load ({type(exc).__name__}: {exc})"
        return engine, ""

    def _record(self, engine: HubModelEngine | None, reason: str) -> None:
        """Tells the API (the status file) and, once per process, the console."""
        source = self.hub_id if engine is not None else "tiny"
        assert source is not None
        write_status(self.data_dir, self.spec.id, DemoStatus(source, engine is None, reason))
        if (self.spec.id, source) in _announced:
            return
        _announced.add((self.spec.id, source))
        if engine is None:
            log.warning(
                "demo model runs on RANDOM WEIGHTS: its pictures are noise",
                model=self.spec.id,
                reason=reason,
                hint="reach the Hugging Face hub (or set DARKROOM_DEMO_MODEL) and restart",
            )
        else:
            log.info("demo model draws with real weights", model=self.spec.id, hub=self.hub_id)

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes() if self.inner is not None else 0

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        if self.inner is None:
            await self.load()
        assert self.inner is not None
        return await self.inner.generate(jobs, monitor)

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()
            self.inner = None


class HubModelEngine(DiffusersEngine):
    """The diffusers engine on a downloaded folder, drawing at the model's own size (512 for
    SD-Turbo) and resizing to the task's: a distilled model draws poorly off its size."""

    def __init__(self, spec: ModelSpec, options: DemoOptions, snapshot: Snapshot) -> None:
        source = str(snapshot.folder)
        pipeline = DiffusersOptions(
            source=source,
            steps=options.steps,
            guidance=options.guidance,
            dtype=options.dtype,
            device=options.device,
        )
        super().__init__(spec, pipeline, source)
        self.variant = snapshot.variant
        self.draw_size = options.draw_size

    def _check_native_size(self, family: Family) -> None:
        """It draws at `draw_size` whatever the entry's native size."""

    def _drawn_size(self, width: int, height: int) -> tuple[int, int]:
        return size_for(nearest_ratio(width, height, RATIOS), self.draw_size)
