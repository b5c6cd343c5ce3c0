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

  // As the server's shown_state (templating.py): an online device that has sent no status
  // for web.device_silent_s is "silent". ``device`` needs only its state and ts.
  const silentS = Number(document.body.dataset.silentS || 30);
  function shownState(device) {
    const age = Date.now() / 1000 - (device.ts || 0);
    return device.state === "online" && device.ts && age > silentS ? "silent" : device.state;
  }

  function showBadge(el, state) {
    el.dataset.state = state;
    el.textContent = state === "silent" ? "no word" : state;
  }

  // Why a stream request was refused, in plain words, and how long to wait before the
  // next try. EventSource hides the HTTP status, so the same URL is asked once more with
  // fetch: a refusal (429: too many live views, 503: Redis down) answers with JSON, and a
  // stream that opens after all is closed at once.
  async function refusal(url, delayMs) {
    const controller = new AbortController();
    try {
      const response = await fetch(url, { signal: controller.signal, cache: "no-store" });
      if (response.status === 429) {
        const waitS = Number(response.headers.get("Retry-After")) || delayMs / 1000;
        const { detail } = await response.json();
        return {
          state: "refused",
          message: `Live updates paused: ${detail}. Trying again in ${waitS} s…`,
          waitMs: waitS * 1000,
        };
      }
      if (response.status === 503) {
        return {
          state: "reconnecting",
          message: "Redis unavailable — reconnecting…",
          waitMs: delayMs,
        };
      }
      if (!response.ok) {
        return {
          state: "reconnecting",
          message: `The server refused live updates (HTTP ${response.status}) — retrying…`,
          waitMs: delayMs,
        };
      }
      return { state: "reconnecting", message: "Connection lost — reconnecting…", waitMs: 0 };
    } catch {
      return {
        state: "reconnecting",
        message: "Server unreachable — reconnecting…",
        waitMs: delayMs,
      };
    } finally {
      controller.abort();
    }
  }

  // Listens to the page's event stream (#connection[data-events]) with one handler per
  // event name ("message" is a MatchRecord, "status" a device status). A stream that ends
  // is reopened by the browser; one refused (429, 503) closes for good in the browser, so
  // it is reopened here, after the server's Retry-After or with back-off, and the banner
  // says why meanwhile. Each new stream starts with a snapshot, so nothing missed stays
  // missing.
  function connect(handlers) {
    const banner = document.getElementById("connection");
    const url = banner.dataset.events;
    let redisDown = banner.dataset.state === "unavailable";
    let delayMs = 1000;
    const show = (state, message) => {
      banner.dataset.state = state;
      fill(banner, { message });
    };
    const open = () => {
      const source = new EventSource(url);
      source.onopen = () => {
        delayMs = 1000;
        redisDown = false;
        show("live", "Live");
      };
      source.addEventListener("unavailable", () => {
        redisDown = true;
      });
      source.onerror = async () => {
        if (source.readyState !== EventSource.CLOSED) {
          show(
            "reconnecting",
            redisDown ? "Redis unavailable — reconnecting…" : "Connection lost — reconnecting…",
          );
          return;
        }
        const { state, message, waitMs } = await refusal(url, delayMs);
        show(state, message);
        setTimeout(open, waitMs);
        delayMs = Math.min(delayMs * 2, 10000);
      };
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => handle(JSON.parse(event.data)));
      }
    };
    open();
  }

  return { format, fill, clone, shownState, showBadge, connect };
})();
