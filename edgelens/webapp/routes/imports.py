"""Imports from the catalog page: several photos and a manifest, imported in the background
while the import's page shows its progress (services.imports)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edgelens.errors import (
    ImportsBusyError,
    ItemNotFoundError,
    UploadRejectedError,
    UploadTooLargeError,
)
from edgelens.webapp.deps import ImportsDep, SettingsDep
from edgelens.webapp.errors import error_response
from edgelens.webapp.services.imports import ImportJob
from edgelens.webapp.templating import templates

router = APIRouter(include_in_schema=False)

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The import's id.")]


@router.post("/catalog/imports")
def start_import(
    request: Request,
    imports: ImportsDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="Photos, and a CSV/JSON manifest.")],
) -> Response:
    try:
        job = imports.submit(
            uploads=[(f.filename or "", f.file) for f in files if f.filename],
            max_bytes=settings.web.max_upload_bytes,
        )
    except UploadTooLargeError as exc:
        return error_response(request, 413, str(exc))
    except ImportsBusyError as exc:
        return error_response(request, 429, str(exc))
    except UploadRejectedError as exc:
        return error_response(request, 422, str(exc))
    return RedirectResponse(f"/catalog/imports/{job.job_id}", status_code=303)


@router.get("/catalog/imports/{job_id}", response_class=HTMLResponse)
def import_page(request: Request, job_id: JobId, imports: ImportsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "import.html", {"job": _job(imports.job(job_id), job_id).to_dict()}
    )


@router.get("/api/imports/{job_id}", include_in_schema=True, tags=["catalog"])
def import_progress(job_id: JobId, imports: ImportsDep) -> dict[str, object]:
    """How far an import from the catalog page got, and what it did."""
    return _job(imports.job(job_id), job_id).to_dict()


def _job(job: ImportJob | None, job_id: str) -> ImportJob:
    if job is None:
        raise ItemNotFoundError(f"no import {job_id} (imports are remembered until restart)")
    return job
