/* PromptForge console: the little behaviour htmx does not cover. No inline script anywhere
   (the Content-Security-Policy allows scripts from this origin only). */
(function () {
  "use strict";

  function announce(button, text) {
    var box = button.closest("section, form, div");
    var status = box && box.parentElement ? box.parentElement.querySelector(".copy-status") : null;
    if (status) { status.textContent = text; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) { return; }
    var done = function () { button.textContent = "Copied"; announce(button, "Copied to the clipboard."); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select(); announce(button, "Selected: press Ctrl+C to copy.");
      });
    } else {
      field.select();
      try { document.execCommand("copy"); done(); } catch (e) { announce(button, "Selected: press Ctrl+C to copy."); }
    }
  });

  /* A live notice says the page is out of date: keep the newest first and at most five. */
  document.addEventListener("htmx:sseMessage", function (event) {
    var live = document.getElementById("live");
    if (!live) { return; }
    var notices = live.querySelectorAll(".live-notice");
    for (var i = 5; i < notices.length; i++) { notices[i].remove(); }
  });
})();
