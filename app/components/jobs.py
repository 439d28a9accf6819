"""Training in a background thread, so the page stays responsive while a model trains.

The registry lives in `st.cache_resource`: one per server process, surviving reruns, page
switches and browser refreshes. The thread calls `t4r_core.train` with a progress function
(which only appends to the job's event log) and a stop `threading.Event` (the Stop button).
Nothing in the thread touches Streamlit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from t4r_core.config import ExperimentConfig
from t4r_core.data import SessionData
from t4r_core.errors import T4RError

from . import state

log = logging.getLogger("t4r_app")
ACTIVE = ("starting", "running", "stopping")


@dataclass
class TrainingJob:
    run_name: str
    out_dir: Path
    config: ExperimentConfig
    data_label: str
    stop: threading.Event = field(default_factory=threading.Event)
    status: str = "starting"  # starting, running, stopping, done, failed
    error: str | None = None
    max_steps: int | None = None
    last: dict[str, Any] = field(default_factory=dict)  # the newest "step" event
    losses: list[dict[str, Any]] = field(default_factory=list)  # {"step", "loss"}
    evals: list[dict[str, Any]] = field(default_factory=list)  # {"step", metric: value}
    metrics: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stopped_by_user: bool = False
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- called from the training thread ------------------------------------------------------
    def on_event(self, ev: dict[str, Any]) -> None:
        with self.lock:
            kind = ev.get("event")
            if kind == "start":
                self.max_steps = ev.get("max_steps")
                if self.status == "starting":
                    self.status = "running"
            elif kind == "step":
                self.last = dict(ev)
                self.max_steps = ev.get("max_steps") or self.max_steps
                # the trainer repeats the last logged loss until the next log: keep each value once
                if ev.get("loss") is not None and (not self.losses or self.losses[-1]["loss"] != ev["loss"]):
                    self.losses.append({"step": ev["step"], "loss": ev["loss"]})
            elif kind == "eval":
                row = {"step": ev.get("step", self.last.get("step", 0)), "epoch": ev.get("epoch")}
                row.update({k: v for k, v in (ev.get("metrics") or {}).items() if isinstance(v, (int, float))})
                self.evals.append(row)
            elif kind == "done":
                self.metrics = ev.get("metrics")

    # -- read from the page ---------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "run_name": self.run_name, "status": self.status, "error": self.error, "max_steps": self.max_steps,
                "last": dict(self.last), "losses": pd.DataFrame(self.losses, columns=["step", "loss"]),
                "evals": pd.DataFrame(self.evals), "metrics": self.metrics, "started": self.started,
                "finished": self.finished, "stopped_by_user": self.stopped_by_user, "data_label": self.data_label,
                "body": self.config.model.body, "masking": self.config.model.masking,
            }

    def request_stop(self) -> None:
        with self.lock:
            if self.status in ("starting", "running"):
                self.status = "stopping"
        self.stop.set()


def _run_job(job: TrainingJob, data: SessionData, data_source: dict[str, Any]) -> None:
    from t4r_core.trainer import train

    try:
        run = train(job.config, data, job.out_dir, progress=job.on_event, stop=job.stop, data_source=data_source)
        with job.lock:
            job.status = "done"
            job.stopped_by_user = bool(run is not None and run.environment.get("stopped_by_user"))
        state.set_last_run(job.run_name)
    except T4RError as e:  # the library's own messages say what to fix
        with job.lock:
            job.status, job.error = "failed", str(e)
    except MemoryError:
        with job.lock:
            job.status = "failed"
            job.error = ("out of memory while training; lower train.batch_size or model.max_len, or use "
                         "model.loss=sampled_ce for a large item catalogue")
    except Exception as e:  # noqa: BLE001 - a bug: logged with its traceback, shown as one line
        log.error("training %s failed:\n%s", job.run_name, traceback.format_exc())
        msg = str(e).splitlines()[0] if str(e) else ""
        if "out of memory" in msg.lower():
            msg += " — lower train.batch_size or model.max_len, or use model.loss=sampled_ce"
        with job.lock:
            job.status, job.error = "failed", f"{type(e).__name__}: {msg}"[:500]
    finally:
        with job.lock:
            job.finished = time.time()


class JobRegistry:
    """At most one training at a time (a CPU has no room for two); the newest job is remembered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, TrainingJob] = {}
        self.latest: str | None = None

    def current(self) -> TrainingJob | None:
        with self.lock:
            return self.jobs.get(self.latest) if self.latest else None

    def active(self) -> TrainingJob | None:
        job = self.current()
        return job if job is not None and job.active else None

    def start(self, cfg: ExperimentConfig, data: SessionData, runs_dir: Path, run_name: str, data_label: str,
              data_source: dict[str, Any]) -> TrainingJob:
        with self.lock:
            running = self.jobs.get(self.latest) if self.latest else None
            if running is not None and running.active:
                raise T4RError(f"run {running.run_name!r} is still training; stop it or wait for it to finish")
            job = TrainingJob(run_name, runs_dir / run_name, cfg, data_label)
            job.thread = threading.Thread(target=_run_job, args=(job, data, data_source),
                                          name=f"t4r-train-{run_name}", daemon=True)
            self.jobs[run_name] = job
            self.latest = run_name
        job.thread.start()
        return job


@st.cache_resource
def registry() -> JobRegistry:
    return JobRegistry()


_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_run_name(text: str) -> str:
    name = _NAME.sub("-", str(text)).strip(".-_")[:60]
    return name or "run"


def unique_run_name(base: str, folder: Path, reserved: set[str] = frozenset()) -> str:
    """`base`, or `base-2`, `base-3`, ... so that no existing run (or temp folder) is touched."""
    base = safe_run_name(base)
    name, i = base, 1
    while name in reserved or (folder / name).exists() or any(folder.glob(f".{name}.*")):
        i += 1
        name = f"{base}-{i}"
    return name


def default_run_name(preset: str | None, cfg: ExperimentConfig) -> str:
    tag = (preset or f"{cfg.model.body}-{cfg.model.masking}").replace("+", "-plus")
    return safe_run_name(f"{tag}-{time.strftime('%m%d-%H%M%S')}")
