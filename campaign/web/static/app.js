/* The console's own script. Progressive enhancement only: every page reads without it.
   No inline script anywhere (the Content-Security-Policy has no 'unsafe-inline'), no eval. */

/* enhanceAll(selector, fn): fn(element) for every element matching selector, in the page
   once it is read and in every part htmx swaps in later (each part enhances itself). */
function enhanceAll(selector, fn) {
  "use strict";
  function enhance(root) {
    (root.querySelectorAll ? root : document).querySelectorAll(selector).forEach(fn);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      enhance(document);
    });
  } else {
    enhance(document);
  }
  document.addEventListener("htmx:load", function (event) {
    enhance(event.target);
  });
}

(function () {
  "use strict";

  if (window.htmx) {
    // also in <meta name="htmx-config"> (read when htmx starts); both say the same
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
    htmx.config.includeIndicatorStyles = false; // its <style> would break the CSP
    htmx.config.selfRequestsOnly = true;
  }

  function csrfToken() {
    return (document.body && document.body.dataset.csrf) || "";
  }

  // Every htmx request carries the CSRF token (hx-headers on <body> does too).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // <form data-confirm="..."> or <button data-confirm="...">: ask before submitting.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var message =
        (submitter && submitter.dataset && submitter.dataset.confirm) ||
        (form.dataset && form.dataset.confirm);
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // <div data-dropzone> around an <input type="file">: files dropped on it are chosen.
  function enableDropzone(zone) {
    if (zone.dataset.dropzoneReady) return;
    zone.dataset.dropzoneReady = "1";
    var input = zone.querySelector('input[type="file"]');
    if (!input) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("dragging");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", function () {
      var list = zone.querySelector("[data-dropzone-files]");
      if (!list) return;
      list.textContent = Array.prototype.map
        .call(input.files, function (file) {
          return file.name;
        })
        .join(", ");
    });
  }

  enhanceAll("[data-dropzone]", enableDropzone);
})();

/* --- new campaign (pages_new.py): begin
   <ul data-insert-into="TEXTAREA_ID" data-insert-label="Insert"> of <li data-insert="{列名}">:
   each item becomes a button that inserts its placeholder at the cursor of the textarea
   (an "input" event follows, so the live sample re-renders). Without JS: a list to copy. */
(function () {
  "use strict";

  function insertAt(area, text) {
    var start = area.selectionStart === undefined ? area.value.length : area.selectionStart;
    var end = area.selectionEnd === undefined ? start : area.selectionEnd;
    area.value = area.value.slice(0, start) + text + area.value.slice(end);
    var caret = start + text.length;
    area.focus();
    area.setSelectionRange(caret, caret);
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function enablePlaceholders(list) {
    if (list.dataset.insertReady) return;
    list.dataset.insertReady = "1";
    var area = document.getElementById(list.dataset.insertInto);
    if (!area) return;
    var label = list.dataset.insertLabel || "";
    list.querySelectorAll("li[data-insert]").forEach(function (item) {
      var text = item.dataset.insert;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = text;
      button.setAttribute("aria-label", label ? label + " " + text : text);
      button.addEventListener("click", function () {
        insertAt(area, text);
      });
      item.textContent = "";
      item.appendChild(button);
    });
  }

  enhanceAll("ul[data-insert-into]", enablePlaceholders);
})();
/* --- new campaign: end */
