// Ferrota console: the two things a page does better with a script; without it, every page
// still works (forms post, pages reload).
// 1. A rollout's progress follows the server's events (server-sent events, EventSource).
// 2. Cancelling asks first.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.querySelector("[data-events]");
  if (live && window.EventSource) {
    var source = new EventSource(live.getAttribute("data-events"));
    source.addEventListener("progress", function (e) {
      live.innerHTML = e.data;
      live.setAttribute("data-updated", String(Date.now()));
    });
    source.addEventListener("problem", function (e) {
      var note = document.getElementById("live-note");
      if (note) { note.textContent = "Live progress stopped: " + e.data; note.setAttribute("role", "alert"); }
      source.close();
    });
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });
});
