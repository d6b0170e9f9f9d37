// The review dashboard's own small script. Everything works without it; it only helps.
(function () {
  "use strict";

  // A GitHub incident id ends in "#12". A link that did not quote it (%23) leaves "#12"
  // as the URL fragment, so the server looked up the id without its number and answered
  // "not found": move the fragment back into the path once.
  var notFound = document.querySelector("[data-incident-not-found]");
  if (notFound && /^#[0-9]+$/.test(window.location.hash)) {
    window.location.replace(
      window.location.pathname + "%23" + window.location.hash.slice(1) + window.location.search
    );
    return;
  }

  // Clicking (or pressing Enter on) a highlight brings its flag's card into view, and
  // hovering a card outlines its highlights in the text.
  function marksFor(id) {
    return document.querySelectorAll('mark[data-findings~="' + id + '"]');
  }
  document.querySelectorAll("pre.postmortem mark").forEach(function (mark) {
    mark.tabIndex = 0;
    function show() {
      var first = (mark.dataset.findings || "").split(" ")[0];
      var card = document.getElementById("finding-" + first);
      if (!card) return;
      document.querySelectorAll(".finding.active").forEach(function (c) {
        c.classList.remove("active");
      });
      card.classList.add("active");
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    mark.addEventListener("click", show);
    mark.addEventListener("keydown", function (event) {
      if (event.key === "Enter") show();
    });
  });
  document.querySelectorAll(".finding[data-finding]").forEach(function (card) {
    var id = card.dataset.finding;
    function toggle(on) {
      marksFor(id).forEach(function (m) { m.classList.toggle("active", on); });
    }
    card.addEventListener("mouseenter", function () { toggle(true); });
    card.addEventListener("mouseleave", function () { toggle(false); });
    card.addEventListener("focusin", function () { toggle(true); });
    card.addEventListener("focusout", function () { toggle(false); });
  });
})();
