"""Catalog imports from the page: several photos and a CSV/JSON manifest at once, imported
in the background while the page shows the progress.

An upload is staged in its own folder (each file counted against the upload limit, named
only by its base name), then queued; one thread imports the jobs one at a time with the
same code as ``edgelens catalog add``, and forgets the staged files when done. The queue is
bounded: past it, a new import is refused and the page says so.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import IngestReport
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.errors import CatalogError, ImportsBusyError, UploadRejectedError
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES
from edgelens.featurizer.runtime import Featurizer
from edgelens.webapp.services.catalog import copy_at_most

logger = logging.getLogger(__name__)

QUEUED = 8  # imports waiting at most
KEPT = 100  # finished imports remembered for their pages
MANIFEST_SUFFIXES = (".csv", ".json")


@dataclass
class ImportJob:
    """One import: how far it got, and what it did."""

    job_id: str
    files: int
    state: Literal["queued", "running", "done", "failed"] = "queued"
    total: int = 0  # items to import, known once it runs
    handled: int = 0
    report: IngestReport = field(default_factory=IngestReport)
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "files": self.files,
            "total": self.total,
            "handled": self.handled,
            "added": self.report.added,
            "updated": self.report.updated,
            "unchanged": self.report.unchanged,
            "failed": [
                {"file": Path(path).name, "reason": why} for path, why in self.report.failed
            ],
            "error": self.error,
        }


class CatalogImports:
    """The import thread, its bounded queue of jobs, and the jobs it remembers."""

    def __init__(
        self,
        *,
        store: CatalogStore,
        featurizer: Callable[[], Featurizer],
        images_dir: Path,
        recipe: CatalogRecipe,
        staging_dir: Path,
        on_change: Callable[[], None],
    ) -> None:
        """``featurizer`` gives the featurizer of the model the catalog is indexed with
        now, asked at each job (a rollout may change it)."""
        self._store, self._featurizer = store, featurizer
        self._images_dir, self._recipe = images_dir, recipe
        self._staging = staging_dir
        self._on_change = on_change
        self._queue: queue.Queue[tuple[ImportJob, Path] | None] = queue.Queue(maxsize=QUEUED)
        self._jobs: OrderedDict[str, ImportJob] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-imports", daemon=True)

    def start(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)  # left by a process that died
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # busy: it sees the stop after this job
            self._queue.put_nowait(None)
        self._thread.join(timeout=30)

    def job(self, job_id: str) -> ImportJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def submit(self, *, uploads: Sequence[tuple[str, BinaryIO]], max_bytes: int) -> ImportJob:
        """Stage ``uploads`` ((file name, stream) pairs: photos, and at most one manifest)
        and queue their import."""
        if not uploads:
            raise UploadRejectedError("choose the photos (and a CSV or JSON manifest) to add")
        manifests = [name for name, _ in uploads if Path(name).suffix.lower() in MANIFEST_SUFFIXES]
        if len(manifests) > 1:
            raise UploadRejectedError(f"one manifest at a time, not {len(manifests)}")
        job = ImportJob(uuid.uuid4().hex, len(uploads))
        folder = self._staging / job.job_id
        folder.mkdir(parents=True)
        try:
            for name, stream in uploads:
                base = Path(name).name
                suffix = Path(base).suffix.lower()
                if not base or suffix not in (*IMAGE_SUFFIXES, *MANIFEST_SUFFIXES):
                    raise UploadRejectedError(f"{name!r} is neither a photo nor a manifest")
                copy_at_most(stream, folder / base, max_bytes)
            with self._lock:
                self._queue.put_nowait((job, folder))
                self._jobs[job.job_id] = job
                while len(self._jobs) > KEPT:
                    self._jobs.popitem(last=False)
        except queue.Full as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ImportsBusyError(
                f"{QUEUED} imports are waiting already: try again when one has finished"
            ) from exc
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        logger.info("import %s queued: %d file(s)", job.job_id, len(uploads))
        return job

    def _run(self) -> None:
        while not self._stop.is_set():
            taken = self._queue.get()
            if taken is None:
                break
            job, folder = taken
            try:
                self._import(job, folder)
            except Exception as exc:  # a bug must cost this import, never the others
                job.state, job.error = "failed", str(exc)
                logger.exception("import %s failed", job.job_id)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        logger.info("catalog imports stopped")

    def _import(self, job: ImportJob, folder: Path) -> None:
        manifests = [p for p in folder.iterdir() if p.suffix.lower() in MANIFEST_SUFFIXES]
        try:
            sources = collect_sources(manifests or [folder])
        except CatalogError as exc:
            job.state, job.error = "failed", str(exc)
            return
        job.total, job.state = len(sources), "running"

        def advanced(count: int) -> None:
            job.handled += count

        job.report = add_items(
            store=self._store,
            featurizer=self._featurizer(),
            sources=sources,
            images_dir=self._images_dir,
            recipe=self._recipe,
            progress=advanced,
        )
        job.state = "done"
        self._on_change()
        logger.info(
            "import %s done: %d added, %d updated, %d failed",
            job.job_id,
            job.report.added,
            job.report.updated,
            len(job.report.failed),
        )
