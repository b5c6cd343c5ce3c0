// An import's page: asks how far it got every second until it is done, and says so.
"use strict";

(() => {
  const section = document.getElementById("import");
  const summary = section.querySelector("[data-field=summary]");
  const progress = section.querySelector("[data-field=progress]");
  const failed = section.querySelector("[data-field=failed]");

  function show(job) {
    section.dataset.state = job.state;
    progress.max = job.total || 1;
    progress.value = job.handled;
    if (job.state === "queued") summary.textContent = "Waiting for the import before it to finish…";
    else if (job.state === "running") summary.textContent = `Adding ${job.handled} of ${job.total} items…`;
    else if (job.state === "done") {
      summary.textContent =
        `Done: ${job.added} added, ${job.updated} updated, ${job.unchanged} unchanged, ` +
        `${job.failed.length} not added.`;
    } else summary.textContent = `The import failed: ${job.error}`;
    failed.replaceChildren(
      ...job.failed.map((f) => {
        const item = document.createElement("li");
        const name = document.createElement("code");
        name.textContent = f.file;
        item.append(name, `: ${f.reason}`);
        return item;
      }),
    );
  }

  async function poll() {
    const response = await fetch(`/api/imports/${section.dataset.job}`, { cache: "no-store" });
    if (response.ok) show(await response.json());
    if (!["done", "failed"].includes(section.dataset.state)) setTimeout(poll, 1000);
  }

  if (!["done", "failed"].includes(section.dataset.state)) setTimeout(poll, 500);
})();
