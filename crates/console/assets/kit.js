// The console works without this file. With it: a confirmation before a form marked
// data-confirm is posted, and one click per form (no double posts).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const ask = form.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) { event.preventDefault(); return; }
  for (const b of form.querySelectorAll("button[type=submit]")) { b.disabled = true; }
});

// A page that is waiting for something (an event not stored yet) looks again.
const waiting = document.querySelector("[data-reload-after]");
if (waiting) {
  setTimeout(() => window.location.reload(), Number(waiting.getAttribute("data-reload-after")));
}
