// The live session page: one EventSource on /sessions/{id}/events; each message carries
// new sway-trace and joint-angle points ([t_s, ...]) and the current counters, zone,
// sensors and alerts. Traces are drawn with uPlot; everything else is plain DOM text.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.EventSource) { return; }
  var WINDOW_S = 30;
  var swayRows = [];                 // [t, ap, ml, rms] sorted by t; a row has a trace or an RMS
  var sway = [[], [], [], [], []];   // columns for uPlot: t, ap, ml, rms, limit
  var joint = [[], [], [], []];      // t, angle, target, max
  var state = { target_rom_deg: null, max_rom_deg: null, sway: {} };
  var received = [];                 // for the latency benchmark: [t_s of point, ms arrival]
  window.poiseLive = {
    received: received,
    points: function () { return swayRows.length + joint[0].length; },
    joint: function () { return joint; }
  };

  function width(el) { return Math.max(280, el.clientWidth || 600); }
  function axis(label) { return { label: label, stroke: "#111", grid: { stroke: "#ddd" }, ticks: { stroke: "#999" } }; }
  var swayEl = document.getElementById("sway-plot");
  var jointEl = document.getElementById("joint-plot");
  var swayPlot = new uPlot({
    width: width(swayEl), height: 240, legend: { show: true },
    scales: { x: { time: true } },
    axes: [axis("time"), Object.assign(axis("m/s²"), {
      size: 60, values: function (u, vals) { return vals.map(function (v) { return +v.toPrecision(3); }); }
    })],
    series: [{}, { label: "AP", stroke: "#0b5cad", width: 2, spanGaps: true }, { label: "ML", stroke: "#b45f06", width: 2, spanGaps: true },
      { label: "RMS", stroke: "#111", width: 3, spanGaps: true, points: { show: true, size: 6 } },
      { label: "limit", stroke: "#b00020", dash: [8, 6], width: 2, spanGaps: true }]
  }, sway, swayEl);
  var jointPlot = new uPlot({
    width: width(jointEl), height: 240, legend: { show: true },
    scales: { x: { time: true } },
    axes: [axis("time"), axis("degrees")],
    series: [{}, { label: "angle", stroke: "#0b5cad", width: 2 }, { label: "target", stroke: "#1b6e20", dash: [8, 6], width: 2 },
      { label: "limit", stroke: "#b00020", dash: [8, 6], width: 2 }]
  }, joint, jointEl);
  window.addEventListener("resize", function () {
    swayPlot.setSize({ width: width(swayEl), height: 240 });
    jointPlot.setSize({ width: width(jointEl), height: 240 });
  });

  function trim(cols) {
    var t = cols[0];
    if (!t.length) { return; }
    var horizon = t[t.length - 1] - WINDOW_S, n = 0;
    while (n < t.length && t[n] < horizon) { n++; }
    if (n) { for (var i = 0; i < cols.length; i++) { cols[i].splice(0, n); } }
  }
  function swayLimit() {
    var s = state.sway || {};
    if (s.baseline_rms_m_s2 == null) { return null; }
    // the band the worker alerts on: the patient's baseline RMS plus the MDC (for the RMS line)
    return s.baseline_rms_m_s2 + (s.mdc_rms_m_s2 || 0);
  }
  function swayColumns() {
    var lim = swayLimit(), t = swayRows.length ? swayRows[swayRows.length - 1][0] : 0, n = 0;
    while (n < swayRows.length && swayRows[n][0] < t - WINDOW_S) { n++; }
    if (n) { swayRows.splice(0, n); }
    sway = [[], [], [], [], []];
    swayRows.forEach(function (r) {
      sway[0].push(r[0]); sway[1].push(r[1]); sway[2].push(r[2]); sway[3].push(r[3]); sway[4].push(lim);
    });
  }
  function addPoints(msg) {
    var now = performance.timeOrigin + performance.now(), unsorted = false;
    function row(r) {
      if (swayRows.length && r[0] < swayRows[swayRows.length - 1][0]) { unsorted = true; }
      swayRows.push(r);
    }
    msg.sway.forEach(function (p) { row([p[0], p[1], p[2], null]); received.push([p[0], now]); });
    (msg.sway_rms || []).forEach(function (p) { row([p[0], null, null, p[1]]); received.push([p[0], now]); });
    if (unsorted) { swayRows.sort(function (a, b) { return a[0] - b[0]; }); }
    msg.joint.forEach(function (p) {
      joint[0].push(p[0]); joint[1].push(p[1]);
      joint[2].push(state.target_rom_deg); joint[3].push(state.max_rom_deg);
      received.push([p[0], now]);
    });
    if (received.length > 5000) { received.splice(0, received.length - 5000); }
    trim(joint);
    if (msg.sway.length || (msg.sway_rms || []).length || msg.snapshot) { swayColumns(); swayPlot.setData(sway); }
    if (msg.joint.length || msg.snapshot) { jointPlot.setData(joint); }
    if (joint[1].length) { text("angle", joint[1][joint[1].length - 1].toFixed(0) + "°"); }
  }
  function text(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }
  function li(cls, value) { var el = document.createElement("li"); if (cls) { el.className = cls; } el.textContent = value; return el; }
  function fill(id, items) {
    var el = document.getElementById(id);
    while (el.firstChild) { el.removeChild(el.firstChild); }
    items.forEach(function (x) { el.appendChild(x); });
  }
  function show(s) {
    state = s;
    text("reps", String(s.rep_count || 0));
    fill("marks", (s.reps || []).map(function (r) {
      var ok = r.correct === true, no = r.correct === false;
      var el = li(ok ? "ok" : no ? "no" : "na", (ok ? "✓ " : no ? "✗ " : "") + r.index);
      el.title = (r.rom_deg != null ? r.rom_deg.toFixed(0) + "° ROM" : "") + (r.reasons ? " · " + r.reasons.replace(/_/g, " ") : "");
      el.setAttribute("aria-label", "repetition " + r.index + (ok ? " correct" : no ? " incorrect: " + r.reasons.replace(/_/g, " ") : ""));
      return el;
    }));
    var rms = s.sway && s.sway.rms_m_s2;
    text("sway-rms", rms != null ? "RMS " + rms.toFixed(3) + " m/s²" : "–");
    var zone = document.getElementById("zone");
    var z = s.intensity && s.intensity.zone;
    zone.textContent = z ? z + (s.intensity.enmo_mg != null ? " · " + s.intensity.enmo_mg.toFixed(0) + " mg" : "") : "–";
    zone.className = "zone " + (z || "");
    fill("sensors", (s.sensors || []).map(function (x) {
      var el = document.createElement("li"), dot = document.createElement("span");
      dot.className = "dot " + (x.online === true ? "on" : x.online === false ? "off" : "");
      el.appendChild(dot);
      el.appendChild(document.createTextNode(x.sensor + (x.placement ? " (" + x.placement.replace(/_/g, " ") + ")" : "") +
        (x.online === false ? " · offline" : x.online ? " · online" : "") +
        (x.battery_pct != null ? " · battery " + x.battery_pct.toFixed(0) + " %" : "")));
      return el;
    }));
    var alerts = (s.alerts || []).map(function (a) {
      var words = a.kind.replace(/_/g, " ");
      if (a.value != null) { words += ": " + a.value.toPrecision(3) + " " + a.unit; }
      if (a.threshold != null) { words += " (limit " + a.threshold.toPrecision(3) + ")"; }
      if (a.evidence) { words += " · " + Object.keys(a.evidence).map(function (k) { return k + " " + a.evidence[k]; }).join(", "); }
      return li(a.active ? "alert" : "alert ended", words + (a.active ? "" : " · ended"));
    });
    fill("alerts", alerts.length ? alerts : [li("empty", "none")]);
  }

  var lastTrial = null;
  var es = new EventSource(root.getAttribute("data-events"));
  es.onopen = function () { text("conn", "live"); };
  es.onerror = function () { text("conn", "reconnecting…"); };
  es.onmessage = function (ev) {
    var msg = JSON.parse(ev.data);
    var trial = msg.state ? msg.state.trial : lastTrial;
    if (msg.snapshot || trial !== lastTrial) { swayRows.length = 0; joint.forEach(function (c) { c.length = 0; }); }
    lastTrial = trial;
    if (msg.state) { show(msg.state); }
    addPoints(msg);
  };
})();
