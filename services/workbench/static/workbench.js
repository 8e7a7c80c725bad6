// The workbench's only script (no build step). It keeps countdowns live and shows times in the
// reader's own time zone; every page works without it.
(function () {
  "use strict";

  function span(seconds) {
    var minutes = Math.floor(Math.abs(seconds) / 60);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    if (days) { return hours ? days + " d " + hours + " h" : days + " d"; }
    if (hours) { return mins ? hours + " h " + mins + " min" : hours + " h"; }
    return mins + " min";
  }

  function tick(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[data-countdown]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("datetime")) - now) / 1000;
      if (isNaN(left)) { return; }
      var text = left >= 0 ? "due in " + span(left) : "overdue by " + span(left);
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("overdue", left < 0);
    });
  }

  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var when = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(when)) { el.textContent = format.format(new Date(when)); el.title = el.getAttribute("datetime"); }
    });
  }

  function refresh(root) { tick(root); localTimes(root); }

  document.addEventListener("DOMContentLoaded", function () { refresh(document); });
  document.addEventListener("htmx:afterSwap", function (event) { refresh(event.target); });
  setInterval(function () { tick(document); }, 30000);
})();
