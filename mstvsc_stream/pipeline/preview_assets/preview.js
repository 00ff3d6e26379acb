// Refreshes the stats of /stats.json once a second; the picture refreshes itself (MJPEG).
"use strict";

const percent = (value) => (value === null || value === undefined ? "–" : (100 * value).toFixed(1) + " %");
const number = (value) => (value === null || value === undefined ? "–" : String(value));

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function sparkline(history) {
  const points = [];
  const offset = 120 - history.length;
  history.forEach((loss, index) => {
    if (loss !== null) points.push(`${offset + index},${(30 * (1 - loss)).toFixed(2)}`);
  });
  document.getElementById("loss-line").setAttribute("points", points.join(" "));
}

async function refresh() {
  try {
    const response = await fetch("/stats.json", { cache: "no-store" });
    const stats = await response.json();
    if (stats.model) show("stream", `${stats.model} on ${stats.backend}`);
    show("loss-now", percent(stats.loss_now));
    show("loss", percent(stats.segment_loss_rate));
    show("kbps", number(stats.kbps));
    show("decoded", number(stats.gops_decoded));
    show("concealed", number(stats.gops_concealed));
    show("held", number(stats.gops_held));
    show("latency-p50", number(stats.latency_ms_p50));
    show("latency-p95", number(stats.latency_ms_p95));
    show("decode-p50", number(stats.decode_ms_p50));
    show("decode-p95", number(stats.decode_ms_p95));
    show("frames", number(stats.frames_out));
    sparkline(stats.loss_history || []);
    show("updated", "updated " + new Date().toLocaleTimeString());
  } catch (error) {
    show("updated", "the receiver does not answer");
  }
}

refresh();
setInterval(refresh, 1000);
