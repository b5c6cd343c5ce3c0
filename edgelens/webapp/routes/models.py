"""The exported models, for devices to download during a rollout: the manifest (whose
sha256 the device checks the file against) and the ONNX file, for a device's own broker
credentials (HTTP Basic) only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool

from edgelens.broker.accounts import BrokerAccounts
from edgelens.errors import DeviceAuthError, ModelNotFoundError
from edgelens.featurizer.manifest import ModelManifest, all_manifests
from edgelens.settings import Settings
from edgelens.webapp.deps import SettingsDep
from edgelens.wire.names import valid_device_id

router = APIRouter(prefix="/models", include_in_schema=False)
_basic = HTTPBasic(auto_error=False, realm="devices")

ModelId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


async def device(
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)], settings: SettingsDep
) -> str:
    """The device asking, by its broker account; anything else is a DeviceAuthError."""
    if credentials is None or not valid_device_id(credentials.username):
        raise DeviceAuthError("model downloads need a device's broker user and password")
    accounts = BrokerAccounts(
        password_file=settings.broker_password_file, acl_file=settings.broker_acl_file
    )
    known = await run_in_threadpool(accounts.verify, credentials.username, credentials.password)
    if not known:
        raise DeviceAuthError(f"no device {credentials.username!r} with that password")
    return credentials.username


Device = Annotated[str, Depends(device)]


def _manifest(settings: Settings, model_id: str) -> ModelManifest:
    for manifest in all_manifests(settings.model_path):
        if manifest.model_id == model_id:
            return manifest
    raise ModelNotFoundError(f"no exported model {model_id!r} here")


@router.get("/{model_id}/manifest")
def manifest(model_id: ModelId, _: Device, settings: SettingsDep) -> JSONResponse:
    return JSONResponse(_manifest(settings, model_id).to_dict())


@router.get("/{model_id}/onnx")
def onnx_file(model_id: ModelId, _: Device, settings: SettingsDep) -> FileResponse:
    model = _manifest(settings, model_id)
    return FileResponse(
        settings.model_path / model.onnx_file,
        media_type="application/octet-stream",
        filename=model.onnx_file,
    )
