/* Live refresh for the dashboard, select-all for the history table, and copy buttons for ids.
 *
 * Any element with an id and a data-live="<milliseconds>" attribute is refreshed in place: the page's own URL
 * is fetched again and the element with the same id in the answer replaces it. Refreshing pauses while the
 * tab is hidden and while the user has jobs selected, and stops once the new element no longer asks for it
 * (for example when the job it shows has finished).
 */
(function () {
  "use strict";

  function busy(region) {
    return region.querySelector("input[name=job_ids]:checked") !== null ||
      region.contains(document.activeElement) && document.activeElement.matches("input, select, textarea");
  }

  function refresh(id) {
    var region = document.getElementById(id);
    if (!region || !region.hasAttribute("data-live") || document.hidden || busy(region)) return;
    fetch(window.location.href, { headers: { "X-Requested-With": "live-refresh" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        var current = document.getElementById(id);
        if (fresh && current && !busy(current)) {
          current.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () { /* a missed refresh is retried on the next tick */ });
  }

  function start() {
    document.querySelectorAll("[data-live][id]").forEach(function (region) {
      var id = region.id;
      var every = Math.max(parseInt(region.getAttribute("data-live"), 10) || 5000, 1000);
      window.setInterval(function () { refresh(id); }, every);
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        document.querySelectorAll("[data-live][id]").forEach(function (region) { refresh(region.id); });
      }
    });
  }

  document.addEventListener("change", function (event) {
    var name = event.target.getAttribute("data-select-all");
    if (!name) return;
    var form = event.target.form || document;
    form.querySelectorAll("input[name='" + name + "']").forEach(function (box) { box.checked = event.target.checked; });
  });

  // The Clipboard API exists only in secure contexts (https, localhost); a dashboard on plain http elsewhere
  // copies through a selected, off-screen textarea instead.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    area.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    function say(label) {
      button.textContent = label;
      window.setTimeout(function () { button.textContent = "copy"; }, 1500);
    }
    copyText(button.getAttribute("data-copy")).then(
      function () { say("copied"); },
      function () { say("copy failed"); }
    );
  });

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
