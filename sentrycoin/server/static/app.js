// SentryCoin dashboard: renders the server's pushed state (SSE at /live).
// The server aggregates every ~500 ms and sends one "update" event for all books,
// so this page never polls; alert outcomes (filled in over the 15 minutes after
// each alert) arrive as an "outcomes" event every ~15 s.  Authentication (when STATUS_TOKEN is set) rides on
// the HttpOnly cookie the server set when the page was opened with ?token=.
"use strict";

(function () {
  const LADDER_ROWS = 8;
  const MAX_ALERTS = 200;

  const state = {
    cards: new Map(),     // key -> {el, refs, history: [[t_ms, ratio|null]], book}
    alertKeys: new Set(),
    alertItems: new Map(), // alert key -> <li>, to fill in outcomes later
    alertCount: 0,
    updates: 0,
    mode: null,
    fallback: [],         // venues on simulated data (MOCK_FALLBACK), as /status "fallback"
    historyMs: 300000,
  };
  // For tests and curious humans: read-only view of what the page has seen.
  window.sentrycoin = state;

  const $ = (id) => document.getElementById(id);

  // ---------- formatting ----------
  function fmtRatio(r) {
    if (r === null || r === undefined) return "—";
    if (r >= 100) return r.toFixed(0);
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2);
  }
  function fmtPrice(p) {
    if (p === null || p === undefined) return "—";
    const a = Math.abs(p);
    const digits = a >= 1000 ? 2 : a >= 1 ? 4 : a >= 0.01 ? 6 : 8;
    return p.toLocaleString("en-US", { minimumFractionDigits: Math.min(2, digits), maximumFractionDigits: digits });
  }
  function fmtQty(q) {
    if (q === null || q === undefined) return "—";
    const a = Math.abs(q);
    if (a >= 1e9) return (q / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return (q / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (q / 1e3).toFixed(1) + "k";
    if (a >= 100) return q.toFixed(0);
    if (a >= 1) return q.toFixed(2);
    return q.toPrecision(3);
  }
  function fmtAge(ms) {
    if (ms === null || ms === undefined) return "never";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.round(ms / 60000) + " min";
  }
  function fmtDuration(s) {
    s = Math.floor(s || 0);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
  }
  function fmtTime(ms) {
    if (!ms) return "";
    return new Date(ms).toISOString().slice(11, 19) + " UTC";
  }
  function level(book) {
    const r = book.ratio, d = book.danger_ratio;
    if (!book.book_valid || r === null || !d) return "ok";
    if (r >= d) return "danger";
    if (r >= 0.8 * d) return "warn";
    return "ok";
  }

  // ---------- DOM helpers ----------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  // ---------- cards ----------
  function makeCard(book) {
    const card = el("article", "card");
    card.dataset.key = book.key;
    const head = el("div", "card-head");
    const title = el("div", "title");
    title.append(el("span", "sym", book.symbol), el("span", "venue", book.exchange));
    const st = el("span", "pill state");
    head.append(title, st);
    const tags = el("div", "tags");
    const src = el("span", "badge src-" + book.source, book.source);
    const sync = el("span", "pill sync");
    tags.append(src, sync);

    const ratioRow = el("div", "ratio-row");
    const ratio = el("span", "ratio", "—");
    ratio.setAttribute("data-testid", "ratio");
    const label = el("span", "ratio-label");
    ratioRow.append(ratio, label);

    const spark = el("canvas", "spark");
    const balance = el("div", "balance");
    const balBid = el("div", "bal-bid"), balAsk = el("div", "bal-ask");
    balance.append(balBid, balAsk);
    const balLabels = el("div", "balance-labels");
    const bidVol = el("span", "b"), askVol = el("span", "a");
    balLabels.append(bidVol, askVol);

    const ladder = el("div", "ladder");
    const bidRows = [], askRows = [];
    for (let i = 0; i < LADDER_ROWS; i++) {
      for (const side of ["bid", "ask"]) {
        const row = el("div", "lad-row lad-" + side);
        const bar = el("div", "bar");
        const px = el("span", "px"), qty = el("span", "qty");
        if (side === "bid") row.append(bar, qty, px); else row.append(bar, px, qty);
        ladder.append(row);
        (side === "bid" ? bidRows : askRows).push({ row, bar, px, qty });
      }
    }
    const note = el("div", "invalid-note");
    const foot = el("div", "card-foot");
    card.append(head, tags, ratioRow, spark, balance, balLabels, ladder, note, foot);
    return {
      el: card,
      refs: { src, sync, st, ratio, label, spark, balBid, balAsk, bidVol, askVol, bidRows, askRows, note, foot },
      history: [],
      book,
    };
  }

  function renderCard(c) {
    const b = c.book, r = c.refs;
    const lvl = level(b);
    c.el.className = "card level-" + lvl + (b.book_valid ? "" : " invalid");
    setText(r.ratio, fmtRatio(b.ratio));
    r.label.replaceChildren("ask/bid · danger ", el("b", "", fmtRatio(b.danger_ratio)));
    // Nothing green for a book that cannot alert: a disconnected or invalid live
    // book is not "live", and its detector is not "armed" but paused.
    const down = !b.book_valid || (b.source === "live" && !b.connected);
    setText(r.src, b.source === "simulated" ? "SIMULATED" : b.source);
    r.src.className = "badge src-" + b.source + (down ? " down" : "");
    const st = b.book_valid ? b.state : "paused";
    setText(r.st, st);
    r.st.className = "pill state state-" + st;
    const syncText = !b.connected && b.source === "live" ? "disconnected" : b.book_valid ? "in sync" : "resyncing";
    setText(r.sync, syncText);
    r.sync.className = "pill sync" + (down ? " sync-bad" : "");
    let note = "";
    if (!b.book_valid) {
      const why = b.last_error || b.invalid_reason || "resyncing";
      const since = b.invalid_for_s === null || b.invalid_for_s === undefined ? "" : " for " + fmtDuration(b.invalid_for_s);
      note = "Not in sync" + since + ": " + why + " — alerts paused";
    }
    setText(r.note, note);

    const bv = b.bid_volume || 0, av = b.ask_volume || 0, tot = bv + av;
    r.balBid.style.width = tot ? (100 * bv / tot).toFixed(1) + "%" : "0";
    r.balAsk.style.width = tot ? (100 * av / tot).toFixed(1) + "%" : "0";
    setText(r.bidVol, "bid vol " + fmtQty(b.bid_volume));
    setText(r.askVol, "ask vol " + fmtQty(b.ask_volume));

    const bids = b.bids || [], asks = b.asks || [];
    let maxQ = 0;
    for (const [, q] of bids.slice(0, LADDER_ROWS)) maxQ = Math.max(maxQ, q);
    for (const [, q] of asks.slice(0, LADDER_ROWS)) maxQ = Math.max(maxQ, q);
    const fill = (rows, levels) => rows.forEach((row, i) => {
      const lv = levels[i];
      setText(row.px, lv ? fmtPrice(lv[0]) : "");
      setText(row.qty, lv ? fmtQty(lv[1]) : "");
      row.bar.style.width = lv && maxQ ? (100 * lv[1] / maxQ).toFixed(1) + "%" : "0";
    });
    fill(r.bidRows, bids);
    fill(r.askRows, asks);

    const foot = [
      ["bid", fmtPrice(b.best_bid)], ["ask", fmtPrice(b.best_ask)],
      ["msg/s", b.messages_per_s === null ? "—" : b.messages_per_s.toFixed(1)],
      ["age", fmtAge(b.last_update_age_ms)], ["alerts", String(b.alerts)],
    ];
    r.foot.replaceChildren(...foot.map(([k, v]) => {
      const s = el("span", "", k + " ");
      s.append(el("b", "", v));
      return s;
    }));
    drawSpark(c);
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawSpark(c) {
    const canvas = c.refs.spark;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const danger = c.book.danger_ratio || 0;
    const pts = c.history;
    const now = pts.length ? pts[pts.length - 1][0] : Date.now();
    const t0 = now - state.historyMs;
    let maxR = danger * 1.35;
    for (const [, r] of pts) if (r !== null && r > maxR) maxR = r;
    maxR = Math.min(maxR * 1.05, Math.max(danger * 5, 1));
    const pad = 4;
    const x = (t) => ((t - t0) / state.historyMs) * w;
    const y = (r) => h - pad - (Math.min(r, maxR) / maxR) * (h - 2 * pad);

    // danger zone and line
    const yd = y(danger);
    ctx.fillStyle = cssVar("--ask-soft");
    ctx.globalAlpha = 0.45;
    ctx.fillRect(0, 0, w, yd);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = cssVar("--danger-line");
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(0, yd); ctx.lineTo(w, yd); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = cssVar("--danger-line");
    ctx.font = "10px " + cssVar("--mono");
    ctx.textAlign = "right";
    ctx.fillText(fmtRatio(danger), w - 4, Math.max(10, yd - 3));

    // the ratio line, broken where undefined (empty side / resync)
    const lineColor = cssVar("--spark");
    ctx.strokeStyle = lineColor;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let pen = false, last = null;
    for (const [t, r] of pts) {
      if (t < t0) continue;
      if (r === null) { pen = false; continue; }
      const px = x(t), py = y(r);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
      last = [px, py, r];
    }
    ctx.stroke();
    if (last) {
      ctx.fillStyle = last[2] >= danger ? cssVar("--ask") : lineColor;
      ctx.beginPath(); ctx.arc(last[0], last[1], 2.8, 0, Math.PI * 2); ctx.fill();
    }
  }

  function upsertBooks(books, appendPoints) {
    const container = $("books");
    for (const b of books) {
      let c = state.cards.get(b.key);
      if (!c) {
        c = makeCard(b);
        state.cards.set(b.key, c);
        container.append(c.el);
      }
      c.book = b;
      if (appendPoints && b.point) {
        c.history.push(b.point);
        const cutoff = b.point[0] - state.historyMs - 5000;
        while (c.history.length && c.history[0][0] < cutoff) c.history.shift();
      }
      renderCard(c);
    }
    $("books-empty").hidden = state.cards.size > 0;
    renderSummary();
  }

  function renderSummary() {
    let valid = 0, alerting = 0;
    for (const c of state.cards.values()) {
      if (c.book.book_valid) valid++;
      if (c.book.state === "alerting") alerting++;
    }
    const s = $("summary");
    s.replaceChildren(
      el("b", "", String(state.cards.size)), " books · ",
      el("b", "", String(valid)), " in sync · ",
      el("b", "", String(alerting)), " alerting");
  }

  // ---------- alerts ----------
  function alertKey(a) {
    return [a.exchange, a.symbol, a.event_ms, a.severity].join("|");
  }
  function addAlert(a, fresh, atEnd) {
    const k = alertKey(a);
    if (state.alertKeys.has(k)) return;
    state.alertKeys.add(k);
    state.alertCount++;
    const li = el("li", "alert sev-" + (a.severity || "warning") + (fresh ? " fresh" : ""));
    li.dataset.key = a.exchange + "|" + a.symbol;
    const top = el("div", "alert-top");
    const who = el("span");
    who.append(el("span", "sev", a.severity || "alert"), el("span", "alert-sym", a.symbol || "?"),
               el("span", "alert-venue", a.exchange || ""));
    top.append(who, el("span", "alert-time", fmtTime(a.event_ms)));
    const body = el("div", "alert-body");
    body.append("ratio ", el("b", "", fmtRatio(a.ratio)), " ≥ " + fmtRatio(a.danger_ratio) +
                " · bid " + fmtQty(a.bid_volume) + " / ask " + fmtQty(a.ask_volume));
    if (a.source && a.source !== "live") body.append(" · " + a.source);
    const outcome = el("div", "alert-outcome");
    li.append(top, body, outcome);
    state.alertItems.set(k, li);
    if (a.outcome) renderOutcome(li, a.outcome);
    const log = $("alert-log");
    if (atEnd) log.append(li); else log.prepend(li);
    while (log.children.length > MAX_ALERTS) {
      const gone = log.lastElementChild;
      for (const [key, item] of state.alertItems) if (item === gone) state.alertItems.delete(key);
      gone.remove();
    }
    $("alert-empty").hidden = true;
    setText($("alert-count"), String(state.alertCount));
  }

  function fmtPct(p) {
    return p === null || p === undefined ? "–" : (p > 0 ? "−" : "") + Math.abs(p).toFixed(2) + "%";
  }
  function fmtMove(ref, mid) {
    if (ref === null || ref === undefined || mid === null || mid === undefined) return null;
    const pct = (mid - ref) / ref * 100;
    return (pct >= 0 ? "+" : "−") + Math.abs(pct).toFixed(2) + "%";
  }
  function renderOutcome(li, o) {
    // Price after the alert: moves at +1 min / +5 min and the deepest drop seen so far.
    const parts = [];
    const m1 = fmtMove(o.ref_mid, o.mid_60s), m5 = fmtMove(o.ref_mid, o.mid_300s);
    if (m1) parts.push("1m " + m1);
    if (m5) parts.push("5m " + m5);
    if (o.max_drop_pct !== null && o.max_drop_pct !== undefined) {
      let low = "low " + fmtPct(o.max_drop_pct);
      if (o.lead_to_low_s !== null && o.lead_to_low_s !== undefined) low += " after " + fmtDuration(o.lead_to_low_s);
      parts.push(low);
    }
    const line = li.querySelector(".alert-outcome");
    setText(line, parts.length ? "after: " + parts.join(" · ") + (o.complete ? "" : " (watching)") : "");
    if (o.max_drop_pct >= 1) line.classList.add("dropped");
  }
  function renderOutcomeSummary(s) {
    const box = $("outcome-summary");
    if (!s || !s.alerts_counted) {
      setText(box, s && s.alerts_total ? "Outcomes: waiting for 5 min of price after each alert." : "No alert outcomes yet.");
      return;
    }
    const pct = (x) => x === null || x === undefined ? "–" : Math.round(x * 100) + "%";
    box.replaceChildren(
      "After ", el("b", "", String(s.alerts_counted)), " alerts: ",
      el("b", "", pct(s.drop_1pct_share)), " saw a ≥1% drop and ",
      el("b", "", pct(s.drop_2pct_share)), " a ≥2% drop within 5 min",
      s.median_lead_to_low_s !== null && s.median_lead_to_low_s !== undefined
        ? "; median time to the low " + fmtDuration(s.median_lead_to_low_s) + "." : ".");
  }

  function applyOutcomes(doc) {
    if (!doc) return;
    for (const a of doc.alerts || []) {
      const li = state.alertItems.get(alertKey(a));
      if (li && a.outcome) renderOutcome(li, a.outcome);
    }
    renderOutcomeSummary(doc.summary);
  }

  async function loadAlertHistory() {
    // Older alerts from the store (survive restarts); harmless if there is none.
    try {
      const res = await fetch("/alerts?limit=50", { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = await res.json();
      for (const a of doc.alerts || []) addAlert(a, false, true);
      renderOutcomeSummary(doc.outcomes);
    } catch (e) { /* the live log still works */ }
  }

  // ---------- connection ----------
  function setConn(cls, text) {
    const c = $("conn");
    c.className = "conn " + cls;
    setText(c, text);
  }
  function fallbackText(fallback) {
    // One clause per venue MOCK_FALLBACK shows on generated data, naming it.
    return fallback.map((f) => {
      const syms = (f.simulated_symbols || []).join(", ");
      const since = f.since ? " since " + f.since.slice(11, 19) + " UTC" : "";
      const why = f.last_error ? " (" + f.last_error + ")" : "";
      return f.venue + (syms ? " " + syms : "") + " unreachable" + since + why;
    }).join("; ");
  }
  function setMode(mode, fallback) {
    state.mode = mode;
    state.fallback = fallback || [];
    const badge = $("mode-badge");
    setText(badge, mode === "simulated" || mode === "mixed" ? mode.toUpperCase() : mode);
    badge.className = "badge mode-badge src-" + mode;
    const banner = $("sim-banner");
    banner.hidden = mode !== "simulated" && mode !== "mixed" && !state.fallback.length;
    setText(banner, state.fallback.length
      ? "SIMULATED DATA — " + fallbackText(state.fallback) + "; retrying the real venue, alerts labelled simulated"
      : "SIMULATED MARKET — generated order flow, not real exchange data");
    document.title = (mode === "simulated" || mode === "mixed" ? "[SIM] " : "") + "SentryCoin · order-book imbalance";
  }

  function connect() {
    const es = new EventSource("/live");
    es.addEventListener("snapshot", (ev) => {
      const snap = JSON.parse(ev.data);
      setConn("conn-ok", "live");
      setMode(snap.mode, snap.fallback);
      setText($("version"), snap.version ? "v" + snap.version : "");
      if (snap.history_ms) state.historyMs = snap.history_ms;
      setText($("uptime"), "up " + fmtDuration(snap.uptime_s));
      upsertBooks(snap.books, false);
      for (const c of state.cards.values()) {
        const h = (snap.history || {})[c.book.key];
        if (h) { c.history = h.slice(); renderCard(c); }
      }
      // snapshot alerts are newest first
      for (const a of (snap.alerts || []).slice().reverse()) addAlert(a, false, false);
      applyOutcomes(snap.outcomes);
    });
    es.addEventListener("outcomes", (ev) => applyOutcomes(JSON.parse(ev.data)));
    es.addEventListener("update", (ev) => {
      const u = JSON.parse(ev.data);
      state.updates++;
      setConn("conn-ok", "live");
      setText($("uptime"), "up " + fmtDuration(u.uptime_s));
      if (u.mode !== undefined) setMode(u.mode, u.fallback);
      upsertBooks(u.books, true);
      for (const a of u.alerts || []) addAlert(a, true, false);
    });
    es.onerror = () => setConn(es.readyState === EventSource.CLOSED ? "conn-down" : "conn-wait",
                               es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…");
  }

  window.addEventListener("resize", () => { for (const c of state.cards.values()) drawSpark(c); });
  loadAlertHistory();
  connect();
})();
