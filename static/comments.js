/* The live "characters left" count under comment forms. Loaded with defer by the pages that have comment
   forms (the Content-Security-Policy allows no inline script); without it the forms work the same, and the
   server enforces the limit either way.
   A textarea names its counter: <textarea maxlength="10000" data-counter="ID">. The visible count (#ID) updates
   as you type; the live region #ID-live repeats it for screen readers after a pause, not at every key. */
(function () {
  "use strict";
  var timers = {};
  function count(area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    if (!out) { return; }
    var max = parseInt(area.getAttribute("maxlength") || out.getAttribute("data-max") || "0", 10);
    var left = max - area.value.length;
    out.textContent = left.toLocaleString() + (left === 1 ? " character left" : " characters left");
    out.classList.toggle("error", left < 200);
    var live = document.getElementById(out.id + "-live");
    if (!live) { return; }
    clearTimeout(timers[out.id]);
    timers[out.id] = setTimeout(function () { live.textContent = out.textContent; }, 1000);
  }
  document.addEventListener("input", function (event) {
    var t = event.target;
    if (t && t.matches && t.matches("textarea[data-counter]")) { count(t); }
  });
})();
