/* Phones show `table.table-stack` rows as stacked blocks (static/css/portal.css); each cell gets its
   column's header as `data-label` so the stacked row still says what every value is. Headers that
   are only visually hidden (action columns) give no label. Runs again after htmx swaps. */
(function () {
  function label(th) {
    var copy = th.cloneNode(true);
    copy.querySelectorAll(".visually-hidden, input").forEach(function (node) { node.remove(); });
    return copy.textContent.replace(/\s+/g, " ").trim();
  }
  function labelTables(root) {
    (root || document).querySelectorAll("table.table-stack").forEach(function (table) {
      var headers = table.tHead ? Array.prototype.map.call(table.tHead.rows[0].cells, label) : [];
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", cell.colSpan > 1 ? "" : (headers[column] || ""));
            column += cell.colSpan;
          });
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { labelTables(document); });
  document.addEventListener("htmx:afterSettle", function (event) { labelTables(event.target); });
})();
