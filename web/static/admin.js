// The draft workbench's small helpers, our own code, no dependencies:
//  * the Publish button turns off as soon as the draft changes after validating, since what
//    was validated is no longer what would be published (the server checks again anyway);
//  * a warning before leaving the page with edits (the draft lives in this page only);
//  * the playground's preview as you type: posts the text and the draft to the lint API
//    (debounced) and shows the flags. Everything is inserted as text nodes, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("workbench");
  if (!form) return;
  var draft = document.getElementById("draft");
  var sample = document.getElementById("sample");
  var format = document.getElementById("format");
  var publish = document.getElementById("publish-button");
  var state = document.getElementById("publish-state");
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var dirty = false;

  draft.addEventListener("input", function () {
    dirty = true;
    if (publish && !publish.disabled) {
      publish.disabled = true;
      publish.setAttribute("aria-disabled", "true");
      if (state) state.textContent = "The draft changed since it was validated: validate again to publish.";
    }
    schedule();
  });
  form.addEventListener("submit", function () { dirty = false; });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  var live = document.getElementById("live");
  var timer = null;
  var sequence = 0;
  if (!sample || !live) return;
  sample.addEventListener("input", schedule);
  format.addEventListener("change", schedule);

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(lint, 500);
  }

  function lint() {
    var text = sample.value;
    if (!text.trim()) { live.hidden = true; return; }
    var mine = ++sequence;
    status("Checking…");
    live.hidden = false;
    fetch(sample.getAttribute("data-lint-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": csrf ? csrf.getAttribute("content") : ""
      },
      body: JSON.stringify({ text: text, format: format.value, pack: draft.value, actions: false })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (mine !== sequence) return; // an older answer arriving late
      if (!result.ok) { status(result.body.error || "The check failed."); clear(); return; }
      show(text, result.body.files[0].findings);
    }).catch(function () {
      if (mine === sequence) status("Could not reach the server.");
    });
  }

  function status(message) { live.querySelector(".live-status").textContent = message; }

  function clear() {
    live.querySelector(".live-text").textContent = "";
    live.querySelector(".live-findings").textContent = "";
  }

  function show(text, findings) {
    var shown = findings.filter(function (f) { return !f.suppressed; });
    status(shown.length + " flag(s) under the draft.");
    // Offsets count code points (Python strings); Array.from splits the same way.
    var chars = Array.from(text);
    var pre = live.querySelector(".live-text");
    var list = live.querySelector(".live-findings");
    clear();
    shown.sort(function (a, b) { return a.start - b.start || b.end - a.end; });
    var position = 0;
    shown.forEach(function (f) {
      var start = Math.max(f.start, position);
      var end = Math.max(f.end, start);
      if (end <= position) return; // inside an earlier flag
      if (start > position) pre.appendChild(document.createTextNode(chars.slice(position, start).join("")));
      var mark = document.createElement("mark");
      mark.className = "flag sev-" + f.severity;
      mark.title = f.rule + " (" + f.severity + "): " + f.message;
      mark.textContent = chars.slice(start, end).join("");
      pre.appendChild(mark);
      position = end;
    });
    if (position < chars.length) pre.appendChild(document.createTextNode(chars.slice(position).join("")));
    shown.forEach(function (f) {
      var item = document.createElement("li");
      item.textContent = f.severity + " " + f.rule + " line " + f.line + ": “" + f.text + "” — " + f.message;
      list.appendChild(item);
    });
  }
})();
