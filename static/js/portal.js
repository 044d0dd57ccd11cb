// The portal's only script besides Bootstrap and htmx: the Content-Security-Policy allows no inline
// scripts or event-handler attributes, so behaviour is attached here through data attributes.
(function () {
  "use strict";

  // On phones the settings section tabs scroll sideways: bring the current one into view.
  function centreActiveTab() {
    var tabs = document.querySelector(".settings-tabs"), active = tabs && tabs.querySelector(".active");
    if (active) { tabs.scrollLeft = active.offsetLeft - (tabs.clientWidth - active.offsetWidth) / 2; }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    // <input data-select-all="orders">: ticks or clears every checkbox named "orders".
    if (target.matches && target.matches("input[data-select-all]")) {
      document.querySelectorAll('input[name="' + target.dataset.selectAll + '"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
    // <input data-select-on-click>: a read-only link field selects itself for copying.
    if (target.matches && target.matches("input[data-select-on-click]")) { target.select(); }
  });

  // <form data-confirm="Question?">: asks before submitting.
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", centreActiveTab);
  } else {
    centreActiveTab();
  }
})();
