#!/usr/bin/env bash
# Install the edgelens device bundle this script sits in: its own venv, the matching
# onnxruntime, the model, a config and (as root, with systemd) the service.
#
#   sudo ./install.sh --device-id shelf-3 --broker mqtts://broker.example:8883 \
#        --username shelf-3 --password-file /root/shelf-3.secret --source csi://0 \
#        --model-server https://shop-server.example
#
# --broker is required: the device must be told where the broker is (--broker 127.0.0.1
# when it really runs on this machine).
#
# On a Jetson (/etc/nv_tegra_release) it installs onnxruntime-gpu built for its JetPack
# from the Jetson AI Lab index (JetPack 6.0: jp6/cu122, 6.1+: jp6/cu126), or the wheel
# given with --ort-wheel (JetPack 5: download one from the Jetson Zoo first); elsewhere
# onnxruntime from PyPI. `./install.sh --detect` only prints what it would choose.
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=/opt/edgelens
DEVICE_ID="$(hostname -s 2>/dev/null || echo edgelens-device)"
BROKER=""
USERNAME=""
PASSWORD=""
SOURCE=0
MODEL_SERVER=""
PYTHON=python3
ORT_WHEEL=""
ORT_INDEX=""
SERVICE=auto
SERVICE_USER="${SUDO_USER:-$(id -un)}"
DETECT_ONLY=0
TEGRA_RELEASE="${EDGELENS_TEGRA_RELEASE:-/etc/nv_tegra_release}"

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  cat <<USAGE

options:
  --prefix DIR          install here (default /opt/edgelens)
  --device-id ID        names the device's MQTT topics (default: host name)
  --broker URL          required: mqtts://host:8883, mqtt://host:1883, or a bare host
                        (plain MQTT on 1883), e.g. 127.0.0.1 for a broker on this machine
  --username NAME       MQTT user (see \`edgelens device enroll\` on the broker host)
  --password-file FILE  the MQTT password, read from FILE (- reads standard input);
                        never on the command line, where other users see it
  --source SRC          0, v4l2:///dev/video0, csi://0, rtsp://..., a video or a folder
  --model-server URL    the dashboard's address (https://host): the device then follows
                        the models the fleet is offered there; without it, it keeps its own
  --python PY           Python >= 3.10 to build the venv from (default python3)
  --ort-wheel FILE      install this onnxruntime(-gpu) wheel
  --ort-index URL       pip index for onnxruntime-gpu on a Jetson
  --service-user USER   the service runs as USER (default: the invoking user)
  --no-service          do not install the systemd unit
  --detect              print the platform and the onnxruntime choice, then exit
USAGE
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix|--device-id|--broker|--username|--password-file|--source|--model-server|--python|--ort-wheel|--ort-index|--service-user)
      [[ $# -ge 2 ]] || die "$1 needs a value (see --help)" ;;
  esac
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --device-id) DEVICE_ID="$2"; shift 2 ;;
    --broker) BROKER="$2"; shift 2 ;;
    --username) USERNAME="$2"; shift 2 ;;
    --password-file)
      if [[ "$2" == - ]]; then IFS= read -r PASSWORD; else PASSWORD="$(<"$2")"; fi
      shift 2 ;;
    --source) SOURCE="$2"; shift 2 ;;
    --model-server) MODEL_SERVER="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    --ort-wheel) ORT_WHEEL="$2"; shift 2 ;;
    --ort-index) ORT_INDEX="$2"; shift 2 ;;
    --service-user) SERVICE_USER="$2"; shift 2 ;;
    --no-service) SERVICE=no; shift ;;
    --detect) DETECT_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# -- platform -------------------------------------------------------------------------
JETPACK=""
JP_WHEELS=""  # the onnxruntime-gpu wheels a JetPack 6 device needs
if [[ -f "$TEGRA_RELEASE" ]]; then
  # "# R36 (release), REVISION: 4.0, ..." -> L4T 36.4 -> JetPack 6.1+
  l4t_major="$(sed -n 's/^# R\([0-9]*\) .*/\1/p' "$TEGRA_RELEASE" | head -n1)"
  l4t_minor="$(sed -n 's/.*REVISION: \([0-9]*\).*/\1/p' "$TEGRA_RELEASE" | head -n1)"
  case "$l4t_major" in
    36) JETPACK=6 ;;
    35) JETPACK=5 ;;
    *) die "unsupported L4T release R${l4t_major:-?} in $TEGRA_RELEASE (JetPack 5 or 6 expected)" ;;
  esac
  if [[ "$JETPACK" == 6 ]]; then
    if [[ "${l4t_minor:-0}" -ge 4 ]]; then JP_WHEELS=jp6/cu126; else JP_WHEELS=jp6/cu122; fi
  fi
fi

if [[ -n "$ORT_WHEEL" ]]; then
  ORT_CHOICE="wheel $ORT_WHEEL"
elif [[ -n "$JETPACK" ]]; then
  [[ "$JETPACK" == 6 ]] || die "JetPack 5: download onnxruntime-gpu for your JetPack from the Jetson Zoo and pass --ort-wheel"
  [[ -n "$ORT_INDEX" ]] || die "JetPack 6: onnxruntime-gpu for $JP_WHEELS is on no default index: pass --ort-index URL (the Jetson AI Lab's pip index for $JP_WHEELS, or your site's mirror of it) or --ort-wheel FILE"
  ORT_CHOICE="onnxruntime-gpu ($JP_WHEELS) from $ORT_INDEX"
else
  ORT_CHOICE="onnxruntime from PyPI"
fi
PLATFORM="$( [[ -n "$JETPACK" ]] && echo "jetson jetpack=$JETPACK" || echo "generic $(uname -m)")"
if [[ "$DETECT_ONLY" == 1 ]]; then
  echo "platform: $PLATFORM"
  echo "onnxruntime: $ORT_CHOICE"
  exit 0
fi
[[ -n "$BROKER" ]] || die "no broker address: pass --broker mqtts://HOST:8883 (the machine that runs mosquitto), or --broker 127.0.0.1 if it runs on this device"
say "platform: $PLATFORM; onnxruntime: $ORT_CHOICE"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is older than 3.10; pass --python python3.10 (or newer)"

# The broker URL the config gets (with the MQTT account) and, without the password, the
# one shown; checked here, before anything is installed.
BROKER_URLS="$(MQTT_PASSWORD="$PASSWORD" "$PYTHON" - "$BROKER" "$USERNAME" <<'PY'
import os
import sys
from urllib.parse import quote, urlsplit

url, user = sys.argv[1:]
password = os.environ["MQTT_PASSWORD"]  # not an argument: other users can read those
if "://" not in url:
    url = "mqtt://" + url  # a bare host (or host:port): plain MQTT
parts = urlsplit(url)
try:
    port = parts.port  # a ValueError for a port that is no number
    valid = parts.scheme in ("mqtt", "mqtts") and bool(parts.hostname)
except ValueError:
    valid = False
if not valid:
    sys.exit(
        f"install.sh: --broker must look like mqtts://host:8883, mqtt://host:1883 or a host, "
        f"got {sys.argv[1]!r}"
    )
host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
auth = ""
if user:
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
print(f"{parts.scheme}://{auth}{host}{f':{port}' if port else ''}")
print(f"{parts.scheme}://{host}:{port or (8883 if parts.scheme == 'mqtts' else 1883)}")
PY
)"
MQTT_URL="${BROKER_URLS%%$'\n'*}"
say "broker: ${BROKER_URLS#*$'\n'}"

# -- venv and packages ------------------------------------------------------------------
WHEEL="$(ls "$BUNDLE"/wheels/edgelens_device-*.whl 2>/dev/null | head -n1 || true)"
[[ -n "$WHEEL" ]] || die "no edgelens_device wheel in $BUNDLE/wheels"
mkdir -p "$PREFIX"/{etc,data,models}

VENV_FLAGS=()
EXTRAS="[opencv]"
if [[ -n "$JETPACK" ]] && "$PYTHON" -c 'import cv2, re, sys; sys.exit(not re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))' 2>/dev/null; then
  # JetPack's OpenCV has GStreamer (CSI cameras, NVDEC decoding); PyPI's wheels do not.
  VENV_FLAGS+=(--system-site-packages)
  EXTRAS=""
  say "using JetPack's OpenCV (GStreamer) through --system-site-packages"
fi
say "creating $PREFIX/venv"
"$PYTHON" -m venv "${VENV_FLAGS[@]}" "$PREFIX/venv"
PIP=("$PREFIX/venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install --upgrade pip
if [[ -n "$ORT_WHEEL" ]]; then
  "${PIP[@]}" install "$ORT_WHEEL"
elif [[ -n "$JETPACK" ]]; then
  "${PIP[@]}" install --index-url "$ORT_INDEX" onnxruntime-gpu
else
  "${PIP[@]}" install onnxruntime
fi
say "installing $(basename "$WHEEL")$EXTRAS"
"${PIP[@]}" install "${WHEEL}${EXTRAS}"

# -- model and config -------------------------------------------------------------------
cp "$BUNDLE"/models/* "$PREFIX/models/"
PRECISION="$("$PREFIX/venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["precision"])' "$BUNDLE/bundle.json")"
CONFIG="$PREFIX/etc/device.toml"
[[ -f "$CONFIG" ]] && cp "$CONFIG" "$CONFIG.bak" && say "previous config kept as $CONFIG.bak"
(
  umask 077  # the config holds the MQTT password
  PREFIX="$PREFIX" MQTT_URL="$MQTT_URL" PRECISION="$PRECISION" DEVICE_ID="$DEVICE_ID" \
  SOURCE="$SOURCE" MODEL_SERVER="$MODEL_SERVER" \
  "$PREFIX/venv/bin/python" - "$BUNDLE/config/device.toml.in" "$CONFIG" <<'PY'
import json, os, sys

# Each value goes in as an escaped TOML basic string (JSON's escapes are valid TOML).
text = open(sys.argv[1]).read()
for name in ("PREFIX", "MQTT_URL", "PRECISION", "DEVICE_ID", "SOURCE"):
    text = text.replace(f"@{name}@", json.dumps(os.environ[name])[1:-1])
server = os.environ["MODEL_SERVER"]
line = f"model_server_url = {json.dumps(server)}" if server else "# model_server_url = (none)"
open(sys.argv[2], "w").write(text.replace("@MODEL_SERVER_LINE@", line))
PY
)
EDGELENS_CONFIG="$CONFIG" "$PREFIX/venv/bin/edgelens" config check
EDGELENS_CONFIG="$CONFIG" "$PREFIX/venv/bin/edgelens" model info --precision "$PRECISION" >/dev/null
say "config written to $CONFIG (device $DEVICE_ID, model $PRECISION)"

# -- service ----------------------------------------------------------------------------
if [[ "$SERVICE" == auto && "$(id -u)" == 0 ]] && command -v systemctl >/dev/null \
   && [[ -d /run/systemd/system ]]; then
  chown -R "$SERVICE_USER" "$PREFIX/data" "$CONFIG"
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@USER@|$SERVICE_USER|g" \
      "$BUNDLE/systemd/edgelens-device.service" > /etc/systemd/system/edgelens-device.service
  systemctl daemon-reload
  systemctl enable --now edgelens-device.service
  say "service edgelens-device enabled and started (journalctl -u edgelens-device -f)"
else
  say "no service installed; run it with:"
  echo "    EDGELENS_CONFIG=$CONFIG $PREFIX/venv/bin/edgelens device run"
fi
