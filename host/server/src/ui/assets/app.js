// Handoff dashboard: keeps countdowns ticking and the queue current.
// Every page works without this script; it only saves reloading.
"use strict";

function spanText(seconds) {
  const magnitude = Math.abs(seconds);
  const h = Math.floor(magnitude / 3600);
  const m = Math.floor(magnitude / 60) % 60;
  const s = Math.floor(magnitude % 60);
  const pad = (n) => String(n).padStart(2, "0");
  const text = h > 0 ? `${h}h ${pad(m)}m` : `${m}m ${pad(s)}s`;
  return seconds < 0 ? `${text} overdue` : `in ${text}`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const left = Math.floor((Date.parse(el.dataset.deadline) - now) / 1000);
    el.textContent = spanText(left);
    el.classList.toggle("breach", left < 0);
    const row = el.closest("tr");
    if (row && left < 0) row.classList.add("breached");
  }
}

// The queue: the server says when anything changed; the counts and rows
// are fetched again, with the page's own filters, and swapped in.
function followQueue() {
  const body = document.querySelector("[data-live]");
  if (!body || !window.EventSource) return;
  const status = document.getElementById("live-status");
  let fetching = false;
  let again = false;
  async function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const response = await fetch(body.dataset.live, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.ok) {
        body.innerHTML = await response.text();
        tick();
      }
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
  }
  const events = new EventSource("/ui/events");
  events.addEventListener("changed", refresh);
  events.addEventListener("open", () => {
    if (status) status.textContent = "live";
    refresh();
  });
  events.addEventListener("error", () => {
    if (status) status.textContent = "reconnecting…";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  followQueue();
});
