// The device table: each "status" event updates (or adds) the device's row, and the
// rollout panel (when one is shown) counts the devices that run its new model.
"use strict";

(() => {
  const { clone, connect, fill, format, shownState, showBadge } = window.edgelens;
  const rows = document.querySelector("#devices [data-field=rows]");
  const rollout = document.getElementById("rollout");

  // A clone of a template for one device: its id, and a link to its page.
  function cloneFor(templateId, deviceId) {
    const element = clone(templateId);
    element.dataset.deviceId = deviceId;
    const link = element.querySelector("[data-field=link]");
    link.href = `/devices/${encodeURIComponent(deviceId)}`;
    link.textContent = deviceId;
    return element;
  }

  function rowOf(deviceId) {
    for (const row of rows.children) {
      if (row.dataset.deviceId === deviceId) return row;
    }
    const row = cloneFor("device-template", deviceId);
    const later = [...rows.children].find((other) => other.dataset.deviceId > deviceId);
    rows.insertBefore(row, later || null);
    return row;
  }

  // The counts and the devices that could not switch, as the server renders them.
  function showRollout() {
    const devices = [...rows.children];
    const switched = devices.filter((row) => row.dataset.modelId === rollout.dataset.toModel);
    fill(rollout, { switched: String(switched.length), devices: String(devices.length) });
    const progress = rollout.querySelector("progress");
    if (progress) {
      progress.max = devices.length || 1;
      progress.value = switched.length;
      progress.textContent = `${switched.length} of ${devices.length}`;
    }
    const problems = rollout.querySelector("[data-field=problems]");
    problems.replaceChildren(
      ...devices
        .filter((row) => row.dataset.modelProblem)
        .map((row) => {
          const item = cloneFor("problem-template", row.dataset.deviceId);
          fill(item, { why: row.dataset.modelProblem });
          return item;
        }),
    );
    problems.hidden = problems.children.length === 0;
  }

  // A row whose device has sent nothing for a while turns silent without an event.
  setInterval(() => {
    for (const row of rows.children) {
      if (!row.dataset.said) continue;
      const state = shownState({ state: row.dataset.said, ts: Number(row.dataset.ts) });
      if (state === row.dataset.state) continue;
      row.dataset.state = state;
      showBadge(row.querySelector("[data-field=state]"), state);
    }
  }, 5000);

  connect({
    status: (device) => {
      const row = rowOf(device.device_id);
      row.dataset.said = device.state;
      row.dataset.ts = device.ts || "";
      row.dataset.state = shownState(device);
      row.dataset.modelId = device.model_id || "";
      row.dataset.modelProblem = device.model_problem || "";
      showBadge(row.querySelector("[data-field=state]"), row.dataset.state);
      fill(row, {
        model_id: device.model_id || "",
        provider: device.provider || "",
        fps: format.figure(device.fps),
        featurize_ms: format.figure(device.featurize_ms),
        dropped: format.figure(device.dropped),
        suppressed: format.figure(device.suppressed),
        ts: format.clock(device.ts),
      });
      document.getElementById("no-devices").hidden = true;
      if (rollout) showRollout();
    },
  });
})();
