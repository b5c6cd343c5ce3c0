// One device: a match record ("message" event) replaces #latest and heads the history;
// a "status" event updates the badge. #latest[data-shown-at] is when (epoch ms) the
// record reached the DOM, for latency measurements.
"use strict";

(() => {
  const { clone, connect, fill, format, showBadge } = window.edgelens;
  const latest = document.getElementById("latest");
  const history = document.getElementById("history");

  function matchCard(match, index) {
    const card = clone("match-template");
    card.dataset.itemId = match.item_id;
    const image = card.querySelector("[data-field=image]");
    image.src = `/catalog/images/${encodeURIComponent(match.item_id)}`;
    image.alt = match.name;
    card.querySelector("[data-field=availability]").dataset.available = String(match.available);
    // Only the answer: a near-duplicate's keypoints are in the view too (_macros.html).
    card.querySelector("[data-field=verified]").hidden = index !== 0 || match.verified !== true;
    fill(card, {
      name: match.name,
      price: format.price(match.price, match.currency),
      availability: match.available ? "available" : "unavailable",
      score: format.percent(match.score),
    });
    return card;
  }

  function historyRow(record) {
    const row = clone("history-template");
    const top = record.matches[0];
    row.dataset.seq = record.seq;
    fill(row, {
      seq: `#${record.seq}`,
      captured: format.clock(record.captured_at),
      top: top ? `${top.name} · ${format.percent(top.score)}` : "",
      latency: format.ms(record.latency_ms),
    });
    return row;
  }

  function showRecord(record) {
    const repeat =
      latest.dataset.seq === String(record.seq) &&
      Number(latest.dataset.capturedAt) === record.captured_at;
    if (repeat) return; // the stream's snapshot of what the page already shows
    latest.querySelector("[data-field=matches]").replaceChildren(...record.matches.map(matchCard));
    fill(latest, {
      seq: `#${record.seq}`,
      captured: format.clock(record.captured_at),
      latency: format.ms(record.latency_ms),
    });
    latest.querySelector(".record-head").hidden = false;
    latest.querySelector("[data-field=empty]").hidden = true;
    history.prepend(historyRow(record));
    while (history.children.length > Number(history.dataset.max)) history.lastElementChild.remove();
    const shownAt = performance.timeOrigin + performance.now();
    fill(latest, { screen: `· on screen ${format.ms(shownAt - record.captured_at * 1000)} after capture` });
    latest.dataset.capturedAt = record.captured_at;
    latest.dataset.shownAt = shownAt.toFixed(1);
    latest.dataset.seq = record.seq; // last: tests wait for it, so everything else is in place
  }

  connect({
    message: showRecord,
    status: (device) => {
      showBadge(document.getElementById("device-status"), device.state);
      const provider = device.provider ? ` on ${device.provider}` : "";
      document.getElementById("device-model").textContent = `${device.model_id || ""}${provider}`;
    },
  });
})();
