// Keyboard navigation through the coders' queue: j / ArrowDown and k / ArrowUp move
// between claims, Enter opens the current one (it is a link), a assigns it. Works on
// the server-rendered table and again after htmx swaps it in.
(function () {
  "use strict";
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("table.queue tbody tr[data-row]")); }
  function current() { return document.querySelector("table.queue tbody tr.current"); }
  function select(row) {
    rows().forEach(function (r) { r.classList.remove("current"); });
    if (!row) { return; }
    row.classList.add("current");
    var link = row.querySelector("a.open");
    if (link) { link.focus(); }
  }
  function typing(target) {
    var tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) { return; }
    var all = rows();
    if (!all.length) { return; }
    var at = all.indexOf(current());
    if (event.key === "j" || event.key === "ArrowDown") {
      select(all[Math.min(all.length - 1, at + 1)]);
      event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(all[Math.max(0, at - 1)]);
      event.preventDefault();
    } else if (event.key === "a" && at >= 0) {
      var button = all[at].querySelector("button.assign");
      if (button) { button.click(); event.preventDefault(); }
    }
  });
  document.addEventListener("focusin", function (event) {
    var row = event.target && event.target.closest ? event.target.closest("table.queue tbody tr[data-row]") : null;
    if (row && !row.classList.contains("current")) {
      rows().forEach(function (r) { r.classList.remove("current"); });
      row.classList.add("current");
    }
  });
})();
