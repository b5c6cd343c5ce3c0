// The device table: each "status" event updates (or adds) the device's row.
"use strict";

(() => {
  const { clone, connect, fill, format, showBadge } = window.edgelens;
  const rows = document.querySelector("#devices [data-field=rows]");

  function rowOf(deviceId) {
    for (const row of rows.children) {
      if (row.dataset.deviceId === deviceId) return row;
    }
    const row = clone("device-template");
    row.dataset.deviceId = deviceId;
    const link = row.querySelector("[data-field=link]");
    link.href = `/devices/${encodeURIComponent(deviceId)}`;
    link.textContent = deviceId;
    const later = [...rows.children].find((other) => other.dataset.deviceId > deviceId);
    rows.insertBefore(row, later || null);
    return row;
  }

  connect({
    status: (device) => {
      const row = rowOf(device.device_id);
      row.dataset.state = device.state;
      showBadge(row.querySelector("[data-field=state]"), device.state);
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
    },
  });
})();
