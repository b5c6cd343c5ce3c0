// One device: a match record ("message" event) replaces #latest and heads the history;
// its confirmed answer (stage two, same seq) updates both in place; a "status" event
// updates the badge. #latest[data-shown-at] is when (epoch ms) the record reached the DOM,
// for latency measurements.
"use strict";

(() => {
  const { clone, connect, fill, format, showBadge } = window.edgelens;
  const latest = document.getElementById("latest");
  const history = document.getElementById("history");
  const matchList = latest.querySelector("[data-field=matches]");
  const noMatch = latest.querySelector("[data-field=no-match]");
  const view = latest.querySelector("[data-field=view]");
  const correction = document.getElementById("correction-form"); // signed-in admins only
  // As the server's stage_label macro (_macros.html).
  const stageLabel = (record) => (record.stage === "confirmed" ? "confirmed" : "first answer");

  // A card per match; a card already showing the item is reused (its image stays loaded),
  // so a confirmed answer reorders and re-marks the cards without a flicker.
  function updateCard(card, match, index) {
    if (card.dataset.itemId !== match.item_id) {
      card.dataset.itemId = match.item_id;
      const image = card.querySelector("[data-field=image]");
      image.src = `/catalog/images/${encodeURIComponent(match.item_id)}`;
      image.alt = match.name;
      card.querySelector("[data-field=name]").href = `/catalog/items/${encodeURIComponent(match.item_id)}`;
    }
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

  function showMatches(record) {
    const shown = new Map([...matchList.children].map((card) => [card.dataset.itemId, card]));
    const cards = record.matches.map((match, index) =>
      updateCard(shown.get(match.item_id) || clone("match-template"), match, index),
    );
    matchList.replaceChildren(...cards);
    const none = record.decision === "no_match";
    matchList.hidden = none;
    noMatch.hidden = !none;
  }

  // The camera's view of the shown frame, when it came with one; the correction form is
  // for that frame, unless someone is already typing a correction of an earlier one.
  function showView(record) {
    const url = record.view
      ? `/devices/${encodeURIComponent(record.device_id)}/views/${record.seq}`
      : "";
    const image = view.querySelector("[data-field=view-image]");
    if (url && image.getAttribute("src") !== url) image.src = url;
    view.hidden = !url;
    if (!correction) return;
    const typing = correction.elements.item_id.value !== "" || correction.contains(document.activeElement);
    if (typing && !correction.hidden) return;
    correction.hidden = !url;
    correction.elements.seq.value = record.seq;
    fill(correction, { correcting: `frame #${record.seq}` });
  }

  // The item field offers the catalog items whose name or id matches what is typed.
  function searchItems() {
    const field = correction.elements.item_id;
    const options = document.getElementById("item-options");
    let timer = 0;
    field.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const query = new URLSearchParams({ q: field.value, limit: "20" });
        const response = await fetch(`${field.dataset.search}?${query}`);
        if (!response.ok) return;
        const items = await response.json();
        options.replaceChildren(
          ...items.map((item) => {
            const option = document.createElement("option");
            option.value = item.item_id;
            option.label = item.name;
            return option;
          }),
        );
      }, 150);
    });
  }

  function historyRow(record) {
    const row = clone("history-template");
    const top = record.matches[0];
    row.dataset.seq = record.seq;
    row.dataset.stage = record.stage;
    let answer = "";
    if (record.decision === "no_match") answer = "No match";
    else if (top) answer = `${top.name} · ${format.percent(top.score)}`;
    fill(row, {
      seq: `#${record.seq}`,
      captured: format.clock(record.captured_at),
      top: answer,
      stage: stageLabel(record),
      latency: format.ms(record.latency_ms),
    });
    return row;
  }

  function showRecord(record) {
    const sameFrame =
      latest.dataset.seq === String(record.seq) &&
      Number(latest.dataset.capturedAt) === record.captured_at;
    if (sameFrame && latest.dataset.stage === record.stage) return; // a repeat of the screen
    if (record.stage === "confirmed") {
      // Stage two of a frame: its history line in place; the screen only if it shows it.
      const row = history.querySelector(`[data-seq="${record.seq}"]`);
      if (row) row.replaceWith(historyRow(record));
      if (!sameFrame && latest.dataset.seq !== "") return;
    }
    showMatches(record);
    fill(latest, {
      seq: `#${record.seq}`,
      captured: format.clock(record.captured_at),
      stage: stageLabel(record),
      latency: format.ms(record.latency_ms),
    });
    latest.querySelector(".record-head").hidden = false;
    if (!sameFrame) showView(record);
    latest.querySelector("[data-field=empty]").hidden = true;
    if (!sameFrame && !history.querySelector(`[data-seq="${record.seq}"]`)) {
      history.prepend(historyRow(record));
      while (history.children.length > Number(history.dataset.max)) {
        history.lastElementChild.remove();
      }
    }
    const shownAt = performance.timeOrigin + performance.now();
    fill(latest, { screen: `· on screen ${format.ms(shownAt - record.captured_at * 1000)} after capture` });
    latest.dataset.capturedAt = record.captured_at;
    latest.dataset.shownAt = shownAt.toFixed(1);
    latest.dataset.stage = record.stage;
    latest.dataset.decision = record.decision;
    latest.dataset.seq = record.seq; // last: tests wait for it, so everything else is in place
  }

  if (correction) searchItems();
  connect({
    message: showRecord,
    status: (device) => {
      showBadge(document.getElementById("device-status"), device.state);
      const provider = device.provider ? ` on ${device.provider}` : "";
      document.getElementById("device-model").textContent = `${device.model_id || ""}${provider}`;
    },
  });
})();
