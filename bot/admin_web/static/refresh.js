// Reloads the overview every data-refresh seconds while the tab is visible (the page works without it).
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!(seconds > 0)) {
    return;
  }
  window.setInterval(function () {
    if (!document.hidden) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
