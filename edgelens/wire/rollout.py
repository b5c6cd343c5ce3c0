"""A model rollout across the fleet: what devices are told to run, and where it stands.

The worker that starts serving a newly exported model offers it to the fleet as a
retained :class:`ModelOffer` on :data:`~edgelens.wire.names.FLEET_MODEL_TOPIC`; each
device downloads it from the web app (its ``/models/{model_id}/…`` routes, with the
device's own credentials), checks the manifest's sha256, swaps it in between frames and
reports the model it runs in its status. The :class:`Rollout` record in Redis says which
model the fleet goes from and to, until every device runs the new one or an admin
finishes it; the worker serves both models' indexes until then.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from edgelens.errors import RejectedMessage

MAX_OFFER_BYTES = 4096
MODEL_ID_CHARS = 128


@dataclass(frozen=True)
class ModelOffer:
    """The model a device is to run, by id; its files are at the web app's
    ``/models/{model_id}/manifest`` and ``/models/{model_id}/onnx``."""

    model_id: str
    precision: str
    pooling: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> ModelOffer:
        """An offer from the broker; anything else is a RejectedMessage saying why."""
        if len(payload) > MAX_OFFER_BYTES:
            raise RejectedMessage("bad_offer", f"model offer of {len(payload)} bytes")
        try:
            fields = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RejectedMessage("bad_offer", f"model offer is not JSON: {exc}") from exc
        if not isinstance(fields, dict) or set(fields) != {"model_id", "precision", "pooling"}:
            raise RejectedMessage(
                "bad_offer", "model offer needs exactly model_id, precision and pooling"
            )
        if not all(isinstance(v, str) and 0 < len(v) <= MODEL_ID_CHARS for v in fields.values()):
            raise RejectedMessage("bad_offer", "model offer fields must be short non-empty strings")
        if "/" in fields["model_id"] or fields["model_id"].startswith("."):
            raise RejectedMessage(
                "bad_offer", f"model id {fields['model_id']!r} is not a file name"
            )
        return cls(**fields)


@dataclass(frozen=True)
class Rollout:
    """Where a rollout stands (the Redis hash ``ROLLOUT_KEY``): from one model to another,
    since ``started_at``; ``finished_at`` once every device runs it or an admin said so."""

    from_model: str
    to_model: str
    started_at: float
    finished_at: float | None = None
    finished_by: str = ""  # "fleet" (every device reported it) or the admin's name
    # The model rolled out from, as its manifest's JSON: a worker that starts during the
    # rollout serves it again beside the new one, even once its files are replaced.
    from_manifest: str = ""

    def moves_to(self, model_id: str) -> bool:
        """Under way to ``model_id``, with the manifest of the model it moves the fleet from
        (what a worker serves beside it, and what is added meanwhile is featurized by)."""
        return self.finished_at is None and self.to_model == model_id and bool(self.from_manifest)

    def to_redis(self) -> dict[str, str]:
        return {k: "" if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_redis(cls, fields: dict[bytes, bytes] | dict[str, str]) -> Rollout | None:
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        if not text.get("to_model"):
            return None
        return cls(
            from_model=text.get("from_model", ""),
            to_model=text["to_model"],
            started_at=float(text.get("started_at") or 0),
            finished_at=float(text["finished_at"]) if text.get("finished_at") else None,
            finished_by=text.get("finished_by", ""),
            from_manifest=text.get("from_manifest", ""),
        )
