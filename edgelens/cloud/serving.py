"""What answers the messages: the model served, its index, matcher and catalog follower,
and the threads that answer with them.

The match thread answers every frame from its vectors at once (stage one of
:mod:`edgelens.cloud.answer`) and hands a message whose view could change that answer to
the confirm thread (stage two, its own bounded backlog, so it never delays a first
answer). The model watcher rolls a newly exported model out once the catalog holds its
vectors: both models' indexes answer, each message in its own model's, until the fleet
runs the new one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.answer import Answerer, AnswerPolicy
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.cloud.fairness import FairQueue
from edgelens.cloud.index_writer import filling_alone
from edgelens.cloud.keypoints import KeypointCache
from edgelens.cloud.matcher import ConfirmJob, Matcher
from edgelens.cloud.metrics import Counts
from edgelens.cloud.recall import CorrectedViews
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.sequence_guard import SequenceGuard
from edgelens.cloud.stages import POLL_S, Inbound, NewestPerKey, Outcomes, Outgoing, StageThreads
from edgelens.errors import EdgelensError, ModelError, RejectedMessage
from edgelens.featurizer.manifest import (
    ModelManifest,
    all_manifests,
    load_manifest,
    searchable_against,
)
from edgelens.featurizer.runtime import load_featurizer
from edgelens.search.loader import open_index, save_if_persistent
from edgelens.search.recall import SAME_VIEW_COSINE
from edgelens.settings import Settings
from edgelens.wire.features import model_id_of
from edgelens.wire.names import DEVICES_KEY, ROLLOUT_KEY
from edgelens.wire.rollout import ModelOffer, Rollout

logger = logging.getLogger(__name__)

# Stage two's backlog: devices with a view waiting (one each); the oldest goes when full.
CONFIRM_BACKLOG = 64
CONFIRM_OUTCOMES = Outcomes("confirm_queued", "confirm_superseded", "confirm_dropped")
# Devices whose last confirmed view is remembered.
VIEWS_REMEMBERED = 10_000
# How much lower stage two's thread runs than the first answers (a nice increment).
CONFIRM_NICENESS = 10

Push = Callable[[Outgoing], None]


@dataclass(frozen=True)
class Serving:
    """What answers messages now: one model's index, its matcher and catalog follower.

    Replaced as a whole (one reference assignment) when the model changes, so a message
    is always matched against one consistent model and index.
    """

    manifest: ModelManifest
    matcher: Matcher
    follower: CatalogFollower
    opened_at_seq: int  # the catalog change the index reflected when opened (and saved)


class Models(StageThreads):
    """The model served now (:attr:`current`), the one a rollout brings (:attr:`incoming`),
    and their watcher thread.

    A newly exported model whose vectors the catalog holds starts a rollout: its index
    is built here while the old one keeps answering, the fleet is offered it (``offer``:
    a retained message every device reads), and both are served, each message searched
    in the index of its own model, until every device reports running it or an admin
    finishes the rollout (:data:`~edgelens.wire.names.ROLLOUT_KEY`); then the old one goes.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: CatalogStore,
        stop: threading.Event,
        offer: Callable[[ModelOffer], None] | None = None,
    ) -> None:
        super().__init__(("worker-model", self._watch))
        self._settings = settings
        self._store = store
        self._stop = stop
        self._offer = offer
        self._recipe = CatalogRecipe(settings.catalog.views)
        self._policy = AnswerPolicy.from_settings(settings)
        self._sequence = SequenceGuard()  # one for every model: a swap admits no replay
        self._redis = redis.Redis.from_url(
            str(settings.redis_url), socket_timeout=2.0, socket_connect_timeout=2.0
        )
        configured = self._configured_model()
        previous = self._rolling_out_from(configured)
        self.current = self._serve(previous or configured)
        self.incoming = self._serve(configured) if previous is not None else None
        self._waiting_for: str | None = None

    @property
    def rolling_out(self) -> str | None:
        """The model a rollout under way brings, served beside the current one."""
        incoming = self.incoming
        return incoming.manifest.model_id if incoming is not None else None

    def serving_for(self, model_id: str | None) -> Serving:
        """What searches a message of ``model_id``: the incoming model's index for its
        own (and compatible) vectors during a rollout, else the current one's."""
        incoming = self.incoming
        if incoming is not None and model_id is not None and _serves(incoming, model_id):
            return incoming
        return self.current

    def start(self) -> None:
        self.current.follower.start()
        if self.incoming is not None:
            self.incoming.follower.start()
        super().start()

    def close(self) -> None:
        """Stop following the catalog and close the index; save it where it persists when
        the catalog changed since it was opened (a large index takes a while to write)."""
        if self.incoming is not None:
            self._retire(self.incoming)
        follower, index = self.current.follower, self.current.matcher.index
        follower.stop()
        if follower.applied_seq != self.current.opened_at_seq:  # else its file holds it
            save_if_persistent(
                index,
                recipe=self._recipe,
                index_dir=self._settings.index_dir,
                change_seq=follower.applied_seq,
            )
        index.close()
        self._redis.close()

    def _watch(self) -> None:
        while not self._stop.wait(self._settings.worker.model_poll_s):
            try:
                self.swap_if_changed()
            except EdgelensError:
                logger.exception("model change not served yet; retrying")
        logger.info("model watcher exits")

    def swap_if_changed(self) -> bool:
        """Start a rollout of the configured model if it changed and the catalog holds its
        vectors; finish one whose fleet runs the new model. True when what is served
        changed."""
        if self.incoming is not None:
            return self._finish_if_done(self.incoming)
        manifest = self._configured_model()
        served = self.current.manifest.model_id
        if manifest.model_id == served:
            return False
        if (manifest.model_id, self._recipe.recipe_id) not in self._store.models():
            if self._waiting_for != manifest.model_id:
                logger.warning(
                    "model %s exported; serving %s until the catalog is re-indexed with it",
                    manifest.model_id,
                    served,
                )
                self._waiting_for = manifest.model_id
            return False
        serving = self._serve(manifest)
        serving.follower.start()
        self.incoming = serving
        self._begin_rollout(
            Rollout(
                served,
                manifest.model_id,
                time.time(),
                from_manifest=self.current.manifest.to_json(),
            )
        )
        if self._offer is not None:
            self._offer(ModelOffer(manifest.model_id, manifest.precision, manifest.pooling))
        logger.info(
            "rollout of model %s (%d items) started: %s answers its devices until all run it",
            manifest.model_id,
            len(serving.matcher.index),
            served,
        )
        self._finish_if_done(serving)
        return True

    def _finish_if_done(self, incoming: Serving) -> bool:
        """Serve only ``incoming`` once every device reports running it or an admin
        finished the rollout; Redis away keeps both served."""
        to_model = incoming.manifest.model_id
        try:
            rollout = Rollout.from_redis(self._redis.hgetall(ROLLOUT_KEY))
            running = _models_running(self._redis.hvals(DEVICES_KEY))
            by_admin = rollout is not None and rollout.to_model == to_model and rollout.finished_at
            by_fleet = all(model is not None and _serves(incoming, model) for model in running)
            if not (by_admin or by_fleet):
                return False
            if not by_admin:
                self._redis.hset(
                    ROLLOUT_KEY, mapping={"finished_at": str(time.time()), "finished_by": "fleet"}
                )
        except redis.RedisError as exc:
            logger.warning("rollout of %s: cannot read the fleet (%s); serving both", to_model, exc)
            return False
        previous, self.current, self.incoming = self.current, incoming, None
        self._retire(previous)
        logger.info(
            "rollout finished (%s): now serving model %s only, was also %s",
            "an admin" if by_admin else f"all {len(running)} devices run it",
            to_model,
            previous.manifest.model_id,
        )
        return True

    def _begin_rollout(self, rollout: Rollout) -> None:
        """Record the rollout, unless another worker of the fleet already has."""
        try:
            held = Rollout.from_redis(self._redis.hgetall(ROLLOUT_KEY))
            if held is None or held.to_model != rollout.to_model:
                self._redis.delete(ROLLOUT_KEY)
                self._redis.hset(ROLLOUT_KEY, mapping=rollout.to_redis())
        except redis.RedisError as exc:
            logger.warning("rollout of %s not recorded (%s)", rollout.to_model, exc)

    def _rolling_out_from(self, configured: ModelManifest) -> ModelManifest | None:
        """The model a rollout to ``configured`` still moves the fleet from, when this
        worker starts during it (a restart, another worker of the fleet) and the catalog
        still holds that model's vectors: it is served again beside the configured one, so
        no device still running it is refused."""
        try:
            rollout = Rollout.from_redis(self._redis.hgetall(ROLLOUT_KEY))
        except redis.RedisError as exc:
            logger.warning("rollout record unreadable (%s): serving %s", exc, configured.model_id)
            return None
        if rollout is None or not rollout.moves_to(configured.model_id):
            return None
        try:
            previous = ModelManifest.from_json(rollout.from_manifest)
        except ModelError as exc:
            logger.warning("rollout to %s: %s; serving it alone", configured.model_id, exc)
            return None
        if (previous.model_id, self._recipe.recipe_id) not in self._store.models():
            logger.warning(
                "rollout to %s under way, but the catalog no longer holds the vectors of %s: "
                "its devices are refused until they switch",
                configured.model_id,
                previous.model_id,
            )
            return None
        logger.info(
            "rollout to %s under way: serving %s beside it until the fleet runs it",
            configured.model_id,
            previous.model_id,
        )
        return previous

    @staticmethod
    def _retire(serving: Serving) -> None:
        serving.follower.stop()
        serving.matcher.index.close()  # a vector database's connection, a lite server

    def _configured_model(self) -> ModelManifest:
        cfg = self._settings.featurizer
        return load_manifest(self._settings.model_path, cfg.precision, cfg.pooling)

    def _serve(self, manifest: ModelManifest) -> Serving:
        """Open the index of ``manifest``'s model and the matcher and follower around it."""
        settings = self._settings
        verdicts = {
            other.model_id: searchable_against(other, manifest.model_id)
            for other in all_manifests(settings.model_path)
        }
        search = settings.search
        compatible = frozenset(m for m, (ok, _) in verdicts.items() if ok)
        opened = open_index(
            self._store,
            model_id=manifest.model_id,
            dim=manifest.embedding_dim,
            recipe=self._recipe,
            backend=search.backend,
            ann_min_vectors=search.ann_min_vectors,
            index_dir=settings.index_dir,
            milvus_uri=self._settings.milvus_uri,
            milvus_index=search.milvus_index,
            milvus_staging_dir=search.milvus_staging_dir,
            fill_alone=functools.partial(
                filling_alone,
                self._redis,
                ttl_s=settings.worker.index_writer_ttl_s,
                stop=self._stop,
            ),
        )
        embed_view = self._view_featurizer(manifest) if self._policy.view_focus else None
        corrected = (
            CorrectedViews(
                self._store,
                embed=embed_view,
                models=compatible | {manifest.model_id},
                dim=manifest.embedding_dim,
                capacity=search.corrected_views,
            )
            if embed_view is not None and search.corrected_views
            else None
        )
        answerer = Answerer(
            index=opened.index,
            policy=self._policy,
            embed_view=embed_view,
            recall=corrected,
            keypoints_of=KeypointCache(
                self._store,
                model_id=manifest.model_id,
                recipe_id=self._recipe.recipe_id,
                dim=manifest.embedding_dim,
            ),
        )
        matcher = Matcher(
            answerer=answerer,
            compatible_models=compatible,
            refusals={m: why for m, (ok, why) in verdicts.items() if not ok},
            admit=self._sequence.check,
            keep_views=settings.worker.views_kept_s > 0,
        )
        follower = CatalogFollower(
            store=self._store,
            index=opened.index,
            recipe=self._recipe,
            after_seq=opened.change_seq,
            poll_s=settings.worker.catalog_poll_s,
            redis_url=str(settings.redis_url),
            shared_index=opened.shared_index,
            writer_ttl_s=settings.worker.index_writer_ttl_s,
            corrected=corrected,
        )
        return Serving(manifest, matcher, follower, opened.change_seq)

    def _view_featurizer(
        self, manifest: ModelManifest
    ) -> Callable[[Sequence[np.ndarray]], np.ndarray] | None:
        """``manifest``'s model on a focus view's boxes, one batch; None, and said, if the
        model cannot be loaded here (the frames' vectors still answer)."""
        try:
            # as many threads as the worker's other maths: one message at a time
            featurizer = load_featurizer(
                self._settings, manifest, threads=self._settings.worker.math_threads
            )
        except ModelError as exc:
            logger.error("focus views of %s will not be featurized: %s", manifest.model_id, exc)
            return None
        return featurizer.embed


class ConfirmBacklog:
    """Stage two's waiting jobs: one per device (a newer view supersedes the one waiting,
    whose frame is no longer on screen), at most ``capacity`` devices (the oldest job goes),
    and none for a view the device already had confirmed against the same catalog (after a
    change, such as a correction of that very view, the same view is confirmed again)."""

    def __init__(self, capacity: int = CONFIRM_BACKLOG) -> None:
        self._jobs: NewestPerKey[ConfirmJob] = NewestPerKey(capacity, outcomes=CONFIRM_OUTCOMES)
        self._lock = threading.Lock()
        # last view per device, with the catalog change it was confirmed at
        self._views: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._jobs)

    def offer(self, job: ConfirmJob, *, catalog_seq: int) -> str:
        """Queue ``job`` (the catalog at change ``catalog_seq``); returns its outcome's
        counter name."""
        device_id, vector = job.message.device_id, job.message.embedding
        with self._lock:
            last, seq = self._views.get(device_id, (None, catalog_seq))
            if last is not None and seq == catalog_seq and float(last @ vector) >= SAME_VIEW_COSINE:
                return "confirm_same_view"
            self._views[device_id] = (vector, catalog_seq)
            self._views.move_to_end(device_id)
            if len(self._views) > VIEWS_REMEMBERED:
                self._views.popitem(last=False)
            return self._jobs.put(device_id, job)

    def take(self, timeout: float) -> ConfirmJob | None:
        return self._jobs.take(timeout)


class Answering(StageThreads):
    """The match thread (stage one of every frame, at once) and the confirm thread (stage
    two of the views that could change a first answer, one at a time, below the match
    thread's priority: on a busy core the scheduler runs the first answers first)."""

    def __init__(
        self,
        models: Models,
        *,
        frames: FairQueue[Inbound],
        confirms: ConfirmBacklog,
        push: Push,
        stats: Counts,
        rejects: RejectLog,
        math_threads: int,
        stop: threading.Event,
    ) -> None:
        super().__init__(("worker-match", self._match_loop), ("worker-confirm", self._confirm_loop))
        self._models = models
        self._frames = frames
        self._confirms = confirms
        self._push = push
        self._stats = stats
        self._rejects = rejects
        self._math_threads = math_threads
        self._stop = stop

    def _match_loop(self) -> None:
        _limit_math_threads(self._math_threads)  # OpenMP's limit is per thread
        while not self._stop.is_set():
            inbound = self._frames.take(timeout=POLL_S)
            if inbound is None:
                continue
            job = self.first(inbound, self._push)
            if job is not None:
                follower = self._models.serving_for(job.message.model_id).follower
                self._stats.add(self._confirms.offer(job, catalog_seq=follower.applied_seq))
        logger.info("match loop exits")

    def _confirm_loop(self) -> None:
        _limit_math_threads(self._math_threads)
        _lower_this_threads_priority(CONFIRM_NICENESS)
        while not self._stop.is_set():
            job = self._confirms.take(timeout=POLL_S)
            if job is not None:
                self.confirm(job, self._push)
        logger.info("confirm loop exits")

    def first(self, inbound: Inbound, push: Push) -> ConfirmJob | None:
        """Stage one of one message: its record pushed; stage two's job if it wants one."""
        matcher = self._models.serving_for(model_id_of(inbound.payload)).matcher
        try:
            first = matcher.first(inbound.topic, inbound.payload, received_at=inbound.received_at)
        except RejectedMessage as exc:
            self._stats.add(f"rejected_{exc.reason}")
            self._rejects.warn(exc.reason, "rejected message on %s: %s", inbound.topic, exc)
            return None
        except Exception:  # a bug must cost one message, never the worker
            self._stats.add("errors_unexpected")
            logger.exception("unexpected error on a message of %s", inbound.topic)
            return None
        if first.view_refused is not None:
            self._stats.add("view_refused")
            self._rejects.warn(
                "bad_view",
                "answered %s #%d from its vectors, its view dropped: %s",
                first.record.device_id,
                first.record.seq,
                first.view_refused,
            )
        push(Outgoing(first.record, first.view_jpeg, first.view_vectors))
        return first.confirm

    def confirm(self, job: ConfirmJob, push: Push) -> None:
        """Stage two of one message: its confirmed record pushed, when its view is usable."""
        message = job.message
        try:
            record = self._models.serving_for(message.model_id).matcher.confirm(job)
        except Exception:  # a bug must cost one confirmation, never the worker
            self._stats.add("errors_unexpected")
            logger.exception("unexpected error confirming %s #%d", message.device_id, message.seq)
            return
        if record is None:
            self._stats.add("confirm_unusable_view")
            return
        push(Outgoing(record))


def _serves(serving: Serving, model_id: str) -> bool:
    return model_id == serving.manifest.model_id or model_id in serving.matcher.compatible_models


def _models_running(statuses: Sequence[bytes]) -> list[str | None]:
    """The model each device of the fleet last said it runs (None: it did not say)."""
    running = []
    for raw in statuses:
        try:
            model = json.loads(raw).get("model_id")
        except (ValueError, AttributeError):
            model = None
        running.append(model if isinstance(model, str) else None)
    return running


def _lower_this_threads_priority(niceness: int) -> None:
    """Lower the calling thread's scheduling priority (Linux: threads have their own nice
    value); elsewhere, or without the right, it keeps the process's."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:
        logger.info("stage two runs at the worker's own priority: %s", exc)


def _limit_math_threads(threads: int) -> None:
    """One query at a time gains nothing from BLAS/OpenMP threads, and two workers on two
    cores lose to their spinning."""
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    faiss.omp_set_num_threads(threads)
