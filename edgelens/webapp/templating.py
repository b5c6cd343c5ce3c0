"""The Jinja2 environment, with the number formats the pages and live.js share."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.templating import Jinja2Templates

from edgelens.settings import WebSettings
from edgelens.webapp.deps import csrf_token
from edgelens.wire.status import DeviceStatus

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def price(value: float | None, currency: str) -> str:
    return "—" if value is None else f"{value:.2f} {currency}"


def percent(score: float) -> str:
    return f"{score * 100:.1f} %"


def milliseconds(value: float) -> str:
    return f"{value:.0f} ms"


def figure(value: float | None) -> str:
    """A health figure: whole numbers as they are, others to one decimal; blank if unknown."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


# The template global holding web.device_silent_s: a device whose newest status is older
# is shown as silent. The app sets it from its settings.
SILENT_GLOBAL = "device_silent_s"


def shown_state(device: DeviceStatus | None) -> str:
    """A device's state as the pages show it: "unknown" before any status, "silent" when
    an online device's newest status is older than web.device_silent_s (no word from it:
    the camera, its network or the broker may be down), else the state it said."""
    if device is None:
        return "unknown"
    silent_s = templates.env.globals[SILENT_GLOBAL]
    if device.state == "online" and device.ts is not None and time.time() - device.ts > silent_s:
        return "silent"
    return device.state


def clock(epoch_s: float | None) -> str:
    """Local wall-clock time; the dashboard runs next to the devices it shows."""
    return "" if epoch_s is None else time.strftime("%H:%M:%S", time.localtime(epoch_s))


templates.env.globals.update(
    {
        "csrf_token": csrf_token,
        "shown_state": shown_state,
        SILENT_GLOBAL: WebSettings.model_fields["device_silent_s"].default,
    }
)
templates.env.filters.update(
    price=price, percent=percent, ms=milliseconds, clock=clock, figure=figure
)
