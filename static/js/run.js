/*
 * Live run page. Plain JS, no build step.
 *
 * Connects to /ws/runs/<id>/ (see pipelines/consumers.py for the protocol and why a
 * snapshot plus the deltas after it miss nothing) and keeps a model of the run:
 *
 *   - A snapshot replaces everything held (the first message, and again whenever the
 *     server resynchronises).
 *   - Deltas are applied in seq order. One that arrives early waits for the missing
 *     numbers; if they are still missing after GAP_WAIT_MS, the page reconnects and
 *     starts again from a fresh snapshot.
 *   - A node-run delta is applied only if its `version` is >= the version held for that
 *     node run: events from different workers can arrive out of order, and the same change
 *     can be both in the snapshot and a delta. Unknown node runs are added.
 *   - A run delta never moves a finished run back to pending or running.
 *   - Log lines are kept by id (a line can be both in the snapshot and a delta).
 *
 * The server renders the first paint; this script takes over once the snapshot arrives.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("run-live");
  if (!configNode) return;
  var config = JSON.parse(configNode.textContent);

  var GAP_WAIT_MS = 2000;
  var MAX_LOG_LINES = 2000;
  var REFUSED = { 4401: "not logged in", 4403: "not allowed" };
  var RUN_RANK = { pending: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
  var UNFINISHED = { pending: true, ready: true, running: true, waiting: true };

  var model = { seq: null, run: null, nodeRuns: new Map(), logs: new Map() };
  var early = new Map(); // seq -> event that arrived before its predecessors
  var gapTimer = null;
  var socket = null;
  var retries = 0;
  var filter = null; // a node run id, or null for all log lines
  var renderQueued = false;
  var logsDirty = true;
  var newLogs = [];

  var el = {
    state: document.getElementById("run-state"),
    error: document.getElementById("run-error"),
    duration: document.getElementById("run-duration"),
    status: document.getElementById("live-status"),
    nodes: document.getElementById("node-runs"),
    logs: document.getElementById("logs"),
    filter: document.getElementById("log-filter"),
    filterClear: document.getElementById("log-filter-clear"),
    cancel: document.getElementById("cancel-run"),
    rerun: document.getElementById("rerun"),
  };
  var rows = new Map(); // node run id -> <tr>

  // --- connection ---------------------------------------------------------------------

  function setStatus(status, text) {
    el.status.dataset.status = status;
    el.status.textContent = text || status;
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    setStatus("connecting");
    socket = new WebSocket(scheme + window.location.host + config.ws);
    socket.onmessage = function (message) {
      onMessage(JSON.parse(message.data));
    };
    socket.onclose = function (event) {
      socket = null;
      if (REFUSED[event.code]) {
        setStatus("refused", "live updates refused: " + REFUSED[event.code]);
        return;
      }
      if (event.code === 4000) {
        // Our own resync after a gap: reconnect at once.
        connect();
        return;
      }
      var delay = Math.min(10000, 500 * Math.pow(2, retries++));
      setStatus("offline", "offline, retrying");
      window.setTimeout(connect, delay);
    };
  }

  function resync() {
    early.clear();
    if (gapTimer) window.clearTimeout(gapTimer);
    gapTimer = null;
    if (socket) socket.close(4000, "missing events; resync");
  }

  // --- model --------------------------------------------------------------------------

  function onMessage(message) {
    if (message.type === "snapshot") {
      applySnapshot(message);
    } else if (message.type === "delta") {
      if (model.seq === null || message.seq <= model.seq) return;
      early.set(message.seq, message.event);
      drain();
    }
  }

  function applySnapshot(snapshot) {
    retries = 0;
    setStatus("live");
    model.seq = snapshot.seq;
    model.run = snapshot.run;
    model.nodeRuns = new Map();
    snapshot.node_runs.forEach(function (nodeRun) {
      model.nodeRuns.set(nodeRun.id, nodeRun);
    });
    model.logs = new Map();
    snapshot.logs.forEach(function (log) {
      model.logs.set(log.id, log);
    });
    early.forEach(function (_, seq) {
      if (seq <= snapshot.seq) early.delete(seq);
    });
    logsDirty = true;
    drain();
  }

  function drain() {
    while (early.has(model.seq + 1)) {
      model.seq += 1;
      applyEvent(early.get(model.seq));
      early.delete(model.seq);
    }
    if (early.size && !gapTimer) {
      gapTimer = window.setTimeout(function () {
        gapTimer = null;
        if (early.size) resync();
      }, GAP_WAIT_MS);
    } else if (!early.size && gapTimer) {
      window.clearTimeout(gapTimer);
      gapTimer = null;
    }
    scheduleRender();
  }

  function applyEvent(event) {
    if (event.kind === "node") {
      var incoming = event.node_run;
      var held = model.nodeRuns.get(incoming.id);
      if (!held || incoming.version >= held.version) model.nodeRuns.set(incoming.id, incoming);
    } else if (event.kind === "run") {
      var run = event.run;
      if (!model.run || (RUN_RANK[run.state] || 0) >= (RUN_RANK[model.run.state] || 0)) model.run = run;
    } else if (event.kind === "log") {
      var log = event.log;
      if (model.logs.has(log.id)) return;
      model.logs.set(log.id, log);
      newLogs.push(log);
      if (model.logs.size > MAX_LOG_LINES) {
        model.logs.delete(model.logs.keys().next().value);
        logsDirty = true;
      }
    }
  }

  // --- rendering ----------------------------------------------------------------------

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(function () {
      renderQueued = false;
      render();
    });
  }

  function badge(state) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    span.textContent = state;
    return span;
  }

  function formatDuration(startedAt, finishedAt) {
    if (!startedAt) return "";
    var end = finishedAt ? Date.parse(finishedAt) : Date.now();
    var seconds = Math.max(0, (end - Date.parse(startedAt)) / 1000);
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var minutes = Math.floor(seconds / 60);
    seconds = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + " m " + String(seconds).padStart(2, "0") + " s";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " m";
  }

  function cell(row, index, text) {
    var td = row.children[index];
    var value = text === null || text === undefined ? "" : String(text);
    if (td.textContent !== value) td.textContent = value;
  }

  function newRow(id) {
    var tr = document.createElement("tr");
    tr.dataset.id = id;
    tr.title = "show this node's log lines";
    var classes = ["key", "muted", "", "num", "progress-col", "num", "num", "num", "muted"];
    classes.forEach(function (name) {
      var td = document.createElement("td");
      if (name) td.className = name;
      tr.appendChild(td);
    });
    tr.children[4].innerHTML = '<div class="bar"><span></span></div>';
    return tr;
  }

  function renderNodeRuns() {
    var ids = Array.from(model.nodeRuns.keys()).sort(function (a, b) {
      return a - b;
    });
    // The server-rendered rows are replaced by the model's once it exists.
    Array.from(el.nodes.children).forEach(function (tr) {
      var id = Number(tr.dataset.id);
      if (!model.nodeRuns.has(id) || rows.get(id) !== tr) tr.remove();
    });
    ids.forEach(function (id, index) {
      var nodeRun = model.nodeRuns.get(id);
      var tr = rows.get(id);
      if (!tr) {
        tr = newRow(id);
        rows.set(id, tr);
      }
      if (el.nodes.children[index] !== tr) el.nodes.insertBefore(tr, el.nodes.children[index] || null);
      tr.classList.toggle("selected", filter === id);
      cell(tr, 0, nodeRun.node_key);
      cell(tr, 1, nodeRun.iteration);
      var stateCell = tr.children[2];
      if (stateCell.dataset.state !== nodeRun.state || stateCell.dataset.error !== (nodeRun.error || "")) {
        stateCell.dataset.state = nodeRun.state;
        stateCell.dataset.error = nodeRun.error || "";
        stateCell.replaceChildren(badge(nodeRun.state));
        if (nodeRun.error) {
          var error = document.createElement("div");
          error.className = "node-error";
          error.textContent = nodeRun.error.length > 300 ? nodeRun.error.slice(0, 299) + "…" : nodeRun.error;
          stateCell.appendChild(error);
        }
      }
      cell(tr, 3, nodeRun.attempt);
      var percent = Math.round(100 * (nodeRun.progress || 0));
      if (nodeRun.state === "succeeded" || nodeRun.state === "cached") percent = 100;
      tr.children[4].firstChild.firstChild.style.width = percent + "%";
      cell(tr, 5, nodeRun.records_in);
      cell(tr, 6, nodeRun.records_out);
      cell(tr, 7, formatDuration(nodeRun.started_at, UNFINISHED[nodeRun.state] ? null : nodeRun.finished_at));
      cell(tr, 8, nodeRun.worker);
    });
  }

  function renderRun() {
    var run = model.run;
    if (!run) return;
    if (el.state.dataset.state !== run.state) {
      el.state.dataset.state = run.state;
      el.state.replaceChildren(badge(run.state));
      document.title = document.title.replace(/^(\[[a-z]+\] )?/, "[" + run.state + "] ");
    }
    el.error.hidden = !run.error;
    el.error.textContent = run.error || "";
    var finished = RUN_RANK[run.state] === 2;
    // Cancel only while it runs; re-run only once it has finished (as the API allows).
    if (el.cancel) el.cancel.hidden = finished;
    if (el.rerun) el.rerun.hidden = !finished;
    el.duration.textContent = formatDuration(run.started_at, finished ? run.finished_at : null) || "—";
  }

  function logLine(log) {
    var li = document.createElement("li");
    li.className = "log level-" + log.level;
    li.dataset.nodeRun = log.node_run;
    var time = document.createElement("time");
    time.textContent = (log.created_at || "").slice(11, 19);
    time.title = log.created_at || "";
    var node = document.createElement("span");
    node.className = "log-node";
    node.textContent = log.node_key + (log.iteration ? "[" + log.iteration + "]" : "");
    var level = document.createElement("span");
    level.className = "log-level";
    level.textContent = log.level;
    var text = document.createElement("span");
    text.className = "log-msg";
    text.textContent = log.message;
    li.append(time, node, level, text);
    return li;
  }

  function visible(log) {
    return filter === null || log.node_run === filter;
  }

  function renderLogs() {
    var atBottom = el.logs.scrollHeight - el.logs.scrollTop - el.logs.clientHeight < 24;
    if (logsDirty) {
      var lines = Array.from(model.logs.values())
        .filter(visible)
        .sort(function (a, b) {
          return a.id - b.id;
        })
        .map(logLine);
      el.logs.replaceChildren.apply(el.logs, lines);
      logsDirty = false;
    } else {
      newLogs.filter(visible).forEach(function (log) {
        el.logs.appendChild(logLine(log));
      });
    }
    newLogs = [];
    if (!el.logs.children.length) {
      var empty = document.createElement("li");
      empty.className = "muted empty-logs";
      empty.textContent = filter === null ? "No log lines yet." : "No log lines from this node.";
      el.logs.appendChild(empty);
    } else {
      var placeholder = el.logs.querySelector(".empty-logs");
      if (placeholder && el.logs.children.length > 1) placeholder.remove();
    }
    if (atBottom) el.logs.scrollTop = el.logs.scrollHeight;
    var nodeRun = filter === null ? null : model.nodeRuns.get(filter);
    el.filter.hidden = filter === null;
    if (nodeRun) {
      el.filter.querySelector("strong").textContent =
        nodeRun.node_key + (nodeRun.iteration ? "[" + nodeRun.iteration + "]" : "");
    }
  }

  function render() {
    if (model.seq === null) return;
    renderRun();
    renderNodeRuns();
    renderLogs();
  }

  function setFilter(nodeRunId) {
    filter = filter === nodeRunId ? null : nodeRunId;
    logsDirty = true;
    scheduleRender();
  }

  // --- interaction --------------------------------------------------------------------

  el.nodes.addEventListener("click", function (event) {
    var tr = event.target.closest("tr[data-id]");
    if (tr && model.seq !== null) setFilter(Number(tr.dataset.id));
  });
  el.logs.addEventListener("click", function (event) {
    var node = event.target.closest(".log-node");
    if (node && model.seq !== null) setFilter(Number(node.parentNode.dataset.nodeRun));
  });
  el.filterClear.addEventListener("click", function () {
    filter = null;
    logsDirty = true;
    scheduleRender();
  });

  // Running nodes' durations tick.
  window.setInterval(function () {
    if (model.run && RUN_RANK[model.run.state] !== 2) scheduleRender();
  }, 1000);

  connect();
})();
