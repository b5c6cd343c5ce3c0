// Shared by the live pages: number formats (as the server's Jinja filters), filling the
// <template> clones the server rendered, and an EventSource that keeps reconnecting.
"use strict";

window.edgelens = (() => {
  const pad = (n) => String(n).padStart(2, "0");

  const format = {
    price: (value, currency) => (value == null ? "—" : `${value.toFixed(2)} ${currency}`),
    percent: (score) => `${(score * 100).toFixed(1)} %`,
    ms: (value) => `${value.toFixed(0)} ms`,
    figure: (value) => {
      if (value == null) return "";
      return Number.isInteger(value) ? String(value) : value.toFixed(1);
    },
    clock: (epochS) => {
      if (epochS == null) return "";
      const d = new Date(epochS * 1000);
      return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    },
  };

  // Sets the text of each [data-field] element under root named in values.
  function fill(root, values) {
    for (const [field, value] of Object.entries(values)) {
      const el = root.querySelector(`[data-field="${field}"]`);
      if (el) el.textContent = value;
    }
  }

  function clone(templateId) {
    return document.getElementById(templateId).content.firstElementChild.cloneNode(true);
  }

  function showBadge(el, state) {
    el.dataset.state = state;
    el.textContent = state;
  }

  // Listens to the page's event stream (#connection[data-events]) with one handler per
  // event name ("message" is a MatchRecord, "status" a device status). A stream refused
  // with 503 (Redis down) closes for good in the browser, so it is reopened here with
  // back-off; each new stream starts with a snapshot, so nothing missed stays missing.
  function connect(handlers) {
    const banner = document.getElementById("connection");
    let redisDown = banner.dataset.state === "unavailable";
    let delayMs = 1000;
    const show = (state, message) => {
      banner.dataset.state = state;
      fill(banner, { message });
    };
    const open = () => {
      const source = new EventSource(banner.dataset.events);
      source.onopen = () => {
        delayMs = 1000;
        redisDown = false;
        show("live", "Live");
      };
      source.addEventListener("unavailable", () => {
        redisDown = true;
      });
      source.onerror = () => {
        show(
          "reconnecting",
          redisDown ? "Redis unavailable — reconnecting…" : "Connection lost — reconnecting…",
        );
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(open, delayMs);
          delayMs = Math.min(delayMs * 2, 10000);
        }
      };
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => handle(JSON.parse(event.data)));
      }
    };
    open();
  }

  return { format, fill, clone, showBadge, connect };
})();
