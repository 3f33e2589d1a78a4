// The runs list keeps itself up to date in place: every 3 s (while the page is visible) it asks
// /api/runs with the page's own filters and rewrites the table's rows (text only, no HTML from
// the server), so a run started elsewhere (the command line, another page) appears, and a running
// one's status and reading count change, without a reload (a form being filled keeps its values).
(function () {
  "use strict";
  var body = document.querySelector("#runs tbody");
  if (!body) { return; }
  var PERIOD_MS = 3000;
  window.rramRuns = {updates: 0};
  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    return td;
  }
  function row(r) {
    var tr = document.createElement("tr");
    tr.dataset.run = String(r.id); tr.dataset.status = r.status;
    var id = document.createElement("td"), a = document.createElement("a");
    a.href = "/runs/" + r.id; a.textContent = String(r.id); id.appendChild(a);
    tr.appendChild(id);
    tr.appendChild(cell(r.protocol));
    tr.appendChild(cell(r.status, "status " + r.status));
    tr.appendChild(cell(String(r.readings), "num"));
    tr.appendChild(cell(r.station_name || ""));
    tr.appendChild(cell(r.backend || ""));
    tr.appendChild(cell((r.started_at || "").slice(0, 19)));
    tr.appendChild(cell((r.ended_at || "").slice(0, 19)));
    return tr;
  }
  function render(runs) {
    var rows = runs.map(row);
    if (!rows.length) {
      var tr = document.createElement("tr"), td = cell(body.dataset.empty || "no runs");
      td.colSpan = 8; tr.appendChild(td); rows = [tr];
    }
    body.replaceChildren.apply(body, rows);
    window.rramRuns.updates += 1;
  }
  function refresh() {
    if (document.hidden) { setTimeout(refresh, PERIOD_MS); return; }
    fetch("/api/runs" + location.search, {headers: {accept: "application/json"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (runs) { if (Array.isArray(runs)) { render(runs); } })
      .catch(function () { /* the server is away: try again at the next tick */ })
      .then(function () { setTimeout(refresh, PERIOD_MS); });
  }
  setTimeout(refresh, PERIOD_MS);
})();
