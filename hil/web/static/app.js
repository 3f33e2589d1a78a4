// Live plot of one run: the server pushes a first (possibly sampled) view, the exact one, then
// only what is committed afterwards; redraws are capped at one per animation frame and 4 per second.
(function () {
  "use strict";
  var el = document.getElementById("plot");
  if (!el) { return; }
  var runId = el.dataset.run;
  var spec = null;
  var groups = new Map();   // "series|group" -> [series, group, x_sum, y_sum, count]
  var points = new Map();   // series -> {x: [], y: []}
  var cells = new Map();    // "row|col" -> [row, col, value]
  var epochs = [];
  var dirty = false, lastDraw = 0, firstDrawn = false, exactPending = false;
  var MIN_DRAW_MS = 250;
  window.rramLive = {firstRenderMs: null, draws: 0, lastMessageAt: null, messages: 0, exact: false,
                     scriptsReadyMs: performance.now()};

  function reset(msg) {
    spec = msg.spec; groups.clear(); points.clear(); cells.clear(); epochs = [];
    merge(msg);
  }
  function merge(msg) {
    (msg.groups || []).forEach(function (g) {
      var k = g[0] + "|" + g[1], have = groups.get(k);
      if (have) { have[2] += g[2] || 0; have[3] += g[3] || 0; have[4] += g[4]; }
      else { groups.set(k, g.slice()); }
    });
    (msg.points || []).forEach(function (p) {
      var s = points.get(p[0]); if (!s) { s = {x: [], y: []}; points.set(p[0], s); }
      s.x.push(p[1]); s.y.push(p[2]);
    });
    (msg.cells || []).forEach(function (c) { cells.set(c[0] + "|" + c[1], c); });
    if (msg.epochs) { epochs = msg.epochs; }
  }
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function colour(i, n) {  // viridis, first series dark, last yellow
    var t = n > 1 ? i / (n - 1) : 0, k = Math.min(Math.floor(t * 4), 3), f = t * 4 - k;
    var a = VIRIDIS[k], b = VIRIDIS[k + 1];
    return "rgb(" + [0, 1, 2].map(function (j) { return Math.round(a[j] + (b[j] - a[j]) * f); }).join(",") + ")";
  }
  function traces() {
    var out = [], n = 0, ys = spec.y_scale || 1;
    if (spec.mode === "mean") {
      var bySeries = new Map();
      groups.forEach(function (g) {
        var s = bySeries.get(g[0]); if (!s) { s = []; bySeries.set(g[0], s); } s.push(g);
      });
      // many points: lines only (one SVG path a series; a marker per point would be one element each)
      var many = groups.size > 5000;
      var keys = Array.from(bySeries.keys()).sort(function (a, b) { return a < b ? -1 : a > b ? 1 : 0; });
      keys.forEach(function (key, i) {
        var rows = bySeries.get(key).sort(function (a, b) { return a[1] - b[1]; });
        var x = rows.map(function (g) { return g[2] / g[4] + (spec.x_offset || 0); });
        var y = rows.map(function (g) { return g[3] / g[4] * ys; });
        n += x.length;
        out.push({x: x, y: y, name: String(key), type: "scatter", mode: many ? "lines" : "lines+markers",
                  marker: {size: 4, color: colour(i, keys.length)}, line: {width: 1, color: colour(i, keys.length)}});
      });
    } else if (spec.mode === "raw") {
      var total = 0;
      points.forEach(function (s) { total += s.x.length; });
      var rawMode = total > 5000 ? "lines" : "lines+markers";
      points.forEach(function (s, key) {
        n += s.x.length;
        out.push({x: s.x, y: s.y.map(function (v) { return v * ys; }), name: String(key),
                  type: "scatter", mode: rawMode, marker: {size: 3}});
      });
    } else if (spec.mode === "heatmap") {
      var rows = 0, cols = 0;
      cells.forEach(function (c) { rows = Math.max(rows, c[0] + 1); cols = Math.max(cols, c[1] + 1); });
      var z = [];
      for (var r = 0; r < rows; r++) { z.push(new Array(cols).fill(null)); }
      cells.forEach(function (c) { z[c[0]][c[1]] = c[2] * ys; });
      n = cells.size;
      out.push({z: z, type: "heatmap", colorscale: "Viridis", colorbar: {title: "G (uS)"}});
    } else if (spec.mode === "epochs") {
      var ep = epochs.map(function (e) { return e.epoch; });
      [["train_accuracy", "train accuracy"], ["test_accuracy", "test accuracy"], ["mse", "MSE"],
       ["update_frequency", "update frequency"]].forEach(function (c) {
        var y = epochs.map(function (e) { return e[c[0]]; });
        if (y.some(function (v) { return v !== null && v !== undefined; })) {
          n += y.length;
          out.push({x: ep, y: y, name: c[1], type: "scatter", mode: "lines+markers"});
        }
      });
    }
    return {data: out, n: n};
  }
  function draw() {
    if (!dirty || !spec) { return; }
    var now = performance.now();
    if (now - lastDraw < MIN_DRAW_MS) { setTimeout(function () { requestAnimationFrame(draw); }, MIN_DRAW_MS); return; }
    dirty = false; lastDraw = now;
    var t = traces();
    if (!firstDrawn) { window.rramLive.firstDataMs = performance.now(); }
    var layout = {margin: {t: 10, r: 10, b: 50, l: 70}, showlegend: spec.mode !== "heatmap",
                  legend: {title: {text: spec.mode === "mean" || spec.mode === "raw" ? "series" : ""}},
                  xaxis: {title: {text: spec.xlabel}, type: spec.xlog ? "log" : "linear"},
                  yaxis: {title: {text: spec.ylabel}}, uirevision: "keep"};
    Plotly.react(el, t.data, layout, {displaylogo: false, responsive: true});
    var pc = document.getElementById("point-count");
    pc.textContent = String(t.n); pc.dataset.points = String(t.n);
    window.rramLive.draws += 1;
    if (exactPending) {  // the exact view is on screen (not only received)
      exactPending = false; window.rramLive.exact = true; el.dataset.exact = "1";
    }
    if (!firstDrawn) {
      firstDrawn = true;
      window.rramLive.firstRenderMs = performance.now();
      el.dataset.rendered = "1";
    }
  }
  function show(msg) {
    if (msg.status) {
      var st = document.getElementById("status");
      st.textContent = msg.status; st.className = "status " + msg.status;
    }
    if (msg.readings !== undefined) { document.getElementById("reading-count").textContent = String(msg.readings); }
    if (msg.type === "reset") {
      document.getElementById("sampled").textContent = msg.sampled
        ? "(sampled: " + msg.sampled_readings + " readings; the exact view follows)" : "";
      exactPending = !msg.sampled;
      el.dataset.exact = "0";
    }
  }
  var source = window.rramSource || new EventSource("/api/runs/" + runId + "/live");
  function onMessage(ev) {
    var msg = JSON.parse(ev.data);
    window.rramLive.messages += 1; window.rramLive.lastMessageAt = performance.now();
    if (msg.type === "end") {
      source.close(); show(msg); el.dataset.ended = "1";
      if (document.getElementById("abort")) { setTimeout(function () { location.reload(); }, 300); }
      return;
    }
    if (msg.type === "reset") { reset(msg); } else { merge(msg); }
    show(msg);
    dirty = true; requestAnimationFrame(draw);
  }
  source.onmessage = onMessage;
  (window.rramQueue || []).splice(0).forEach(onMessage);
  source.onerror = function () { if (source.readyState === EventSource.CLOSED) { el.dataset.ended = "1"; } };
})();
