// One device: a match record ("message" event) replaces #latest and heads the history;
// its confirmed answer (stage two, same seq) updates both in place; a "status" event
// updates the badge. #latest[data-shown-at] is when (epoch ms) the record reached the DOM,
// for latency measurements.
"use strict";

(() => {
  const { clone, connect, fill, format, shownState, showBadge } = window.edgelens;
  const latest = document.getElementById("latest");
  const history = document.getElementById("history");
  const matchList = latest.querySelector("[data-field=matches]");
  const noMatch = latest.querySelector("[data-field=no-match]");
  const view = latest.querySelector("[data-field=view]");
  const correction = document.getElementById("correction-form"); // signed-in admins only
  // As the server's stage_label macro (_macros.html).
  const stageLabel = (record) =>
    record.corrected ? "as corrected" : record.stage === "confirmed" ? "confirmed" : "first answer";

  // A card per match; a card already showing the item is reused (its image stays loaded),
  // so a confirmed answer reorders and re-marks the cards without a flicker.
  function updateCard(card, match, index, sure) {
    if (card.dataset.itemId !== match.item_id) {
      card.dataset.itemId = match.item_id;
      const image = card.querySelector("[data-field=image]");
      image.src = `/catalog/images/${encodeURIComponent(match.item_id)}`;
      image.alt = match.name;
      card.querySelector("[data-field=name]").href = `/catalog/items/${encodeURIComponent(match.item_id)}`;
    }
    card.querySelector("[data-field=availability]").dataset.available = String(match.available);
    // In words, as the confidence macro (_macros.html): only the answer can be a match.
    let word = "Similar";
    if (index === 0) word = match.verified === true || sure ? "Match" : "Likely";
    const confidence = card.querySelector("[data-field=confidence]");
    confidence.dataset.confidence = word.toLowerCase();
    confidence.title = `similarity ${format.percent(match.score)}`;
    fill(card, {
      name: match.name,
      price: format.price(match.price, match.currency),
      availability: match.available ? "available" : "not available",
      confidence: word,
    });
    return card;
  }

  function showMatches(record) {
    const shown = new Map([...matchList.children].map((card) => [card.dataset.itemId, card]));
    const cards = record.matches.map((match, index) =>
      updateCard(
        shown.get(match.item_id) || clone("match-template"),
        match,
        index,
        record.corrected || record.clear,
      ),
    );
    matchList.replaceChildren(...cards);
    const none = record.decision === "no_match";
    matchList.hidden = none;
    noMatch.hidden = !none;
  }

  // The newest view the device sent: of the shown frame, or of an earlier one (a device
  // sends its view once a view settles), said in the caption as the server renders it
  // (view_caption, _macros.html). The correction form is for the frame of that view,
  // unless someone is already typing a correction of another one.
  let viewed = view.dataset.seq
    ? {
        device_id: view.dataset.deviceId,
        seq: Number(view.dataset.seq),
        captured_at: Number(view.dataset.capturedAt),
      }
    : null;

  function showView(record) {
    if (record.view) viewed = record;
    if (!viewed) return;
    const url = `/devices/${encodeURIComponent(viewed.device_id)}/views/${viewed.seq}`;
    const image = view.querySelector("[data-field=view-image]");
    if (image.getAttribute("src") !== url) image.src = url;
    const earlier = viewed.seq !== record.seq;
    view.dataset.seq = viewed.seq;
    view.dataset.earlier = String(earlier);
    fill(view, {
      "view-caption": earlier
        ? `What the camera saw in frame #${viewed.seq} at ${format.clock(viewed.captured_at)}, before this answer`
        : "What the camera saw",
    });
    view.hidden = false;
    latest.querySelector("[data-field=no-view]").hidden = true;
    if (!correction) return;
    const typing = correction.elements.item_id.value !== "" || correction.contains(document.activeElement);
    if (typing && !correction.hidden) return;
    correction.hidden = false;
    correction.elements.seq.value = viewed.seq;
    fill(correction, { correcting: `frame #${viewed.seq}` });
    // The form keeps its frame while someone types: its own copy of that frame's view
    // says which one, however the answer above moves on.
    correction.querySelector("[data-field=correcting-view]").src = url;
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

  // As the history_answer macro (_macros.html).
  function historyAnswer(record) {
    const top = record.matches[0];
    if (record.decision === "no_match") return "No match";
    const sure = top && (top.verified === true || record.corrected || record.clear);
    return top ? `${top.name} · ${sure ? "match" : "likely"}` : "";
  }

  function historyRow(record, count = 1) {
    const row = clone("history-template");
    const answer = historyAnswer(record);
    row.dataset.seq = record.seq;
    row.dataset.stage = record.stage;
    row.dataset.answer = answer;
    row.dataset.count = count;
    fill(row, {
      seq: `#${record.seq}`,
      captured: format.clock(record.captured_at),
      top: answer,
      count: count > 1 ? `× ${count}` : "",
      stage: stageLabel(record),
      latency: format.ms(record.latency_ms),
    });
    return row;
  }

  // A new frame: one more of the newest line's run when it says the same, a line otherwise.
  function addToHistory(record) {
    const newest = history.firstElementChild;
    const count = newest && newest.dataset.answer === historyAnswer(record)
      ? Number(newest.dataset.count) + 1
      : 1;
    if (count > 1) newest.remove();
    history.prepend(historyRow(record, count));
    while (history.children.length > Number(history.dataset.max)) {
      history.lastElementChild.remove();
    }
  }

  function showRecord(record) {
    const sameFrame =
      latest.dataset.seq === String(record.seq) &&
      Number(latest.dataset.capturedAt) === record.captured_at;
    if (sameFrame && latest.dataset.stage === record.stage) return; // a repeat of the screen
    if (record.stage === "confirmed") {
      // Stage two of a frame: its history line in place; the screen only if it shows it.
      const row = history.querySelector(`[data-seq="${record.seq}"]`);
      if (row) row.replaceWith(historyRow(record, Number(row.dataset.count)));
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
      addToHistory(record);
    }
    const shownAt = performance.timeOrigin + performance.now();
    fill(latest, { screen: `· on screen ${format.ms(shownAt - record.captured_at * 1000)} after capture` });
    latest.dataset.capturedAt = record.captured_at;
    latest.dataset.shownAt = shownAt.toFixed(1);
    latest.dataset.stage = record.stage;
    latest.dataset.decision = record.decision;
    latest.dataset.seq = record.seq; // last: tests wait for it, so everything else is in place
  }

  // The device's state in shop terms (as device.html renders it); its last answer is
  // dimmed while it is offline or silent.
  const says = document.getElementById("device-says");
  // What it said last: as the server rendered it, until a status arrives.
  let said = says.dataset.said
    ? { state: says.dataset.said, ts: Number(says.dataset.ts), rendered: true }
    : null;

  function showState(device) {
    const state = shownState(device);
    showBadge(document.getElementById("device-status"), state);
    says.dataset.state = state;
    latest.dataset.stale = String(state === "offline" || state === "silent");
    if (state === "silent") {
      says.textContent = `No word from the camera since ${format.clock(device.ts)}: the camera, its network or the server's broker may be down. What you see is its last answer.`;
      return;
    }
    if (device.rendered) return; // the server's words stand: nothing newer to say
    let text = "The camera is on.";
    if (device.camera) text = `${device.camera.charAt(0).toUpperCase()}${device.camera.slice(1)}.`;
    else if (device.state === "offline") text = "The camera is offline: what you see is its last answer.";
    says.textContent = text;
    latest.querySelector("[data-field=no-view]").hidden = device.sends_views !== false || !view.hidden;
  }

  if (correction) searchItems();
  // No status for a while is news too: the page checks how old the last one is.
  setInterval(() => said && showState(said), 5000);
  connect({
    message: showRecord,
    status: (device) => {
      said = device;
      const provider = device.provider ? ` on ${device.provider}` : "";
      document.getElementById("device-model").textContent = `${device.model_id || ""}${provider}`;
      const fps = device.fps == null ? "" : ` · ${format.figure(device.fps)} fps`;
      const model =
        device.featurize_ms == null ? "" : ` · model ${format.figure(device.featurize_ms)} ms a frame`;
      document.getElementById("device-timings").textContent = fps + model;
      showState(device);
    },
  });
})();
