/* FlipSync cost dashboard: fetches the cost views with the operator's API key and draws them.
 *
 * Every chart canvas and table gets data-ready="true" once drawn (or "error" when its view
 * failed) and data-points="<n>" with how many data points it shows, so a headless browser
 * (tests/test_dashboard.py) can wait for the page and check it. Money arrives as integer
 * micro-dollars and is only turned into dollars for display.
 */
"use strict";

(function () {
  const API = "/api/cost";
  const KEY_STORE = "flipsync.dashboard.key";
  const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
    "#db2777", "#65a30d", "#4b5563", "#ea580c"];
  const MAX_ANOMALIES = 10;
  /** Below this many hours of ledger a daily chart has one or two points: draw hours. */
  const HOURLY_BELOW_HOURS = 48;
  /** Work served without a provider call, by lever, as the page names it. */
  const ZERO_CALL = {
    exact_cache: "Exact cache (the same request answered before)",
    semantic_cache: "Semantic cache (a request close enough answered before)",
    dedup: "Dedup (the same request in flight: one call served both)",
    pattern: "Pattern responder (trivial chat answered without a model)",
    photo_dedup: "Photo reuse (the same photo analysed before)",
    zero_call: "Computed without a model (zero-call agents)",
  };
  const charts = new Map();

  // ---- money and small helpers -------------------------------------------------------------

  /** Micro-dollars as dollars for display: $1.23, or more decimals for small sums. */
  function usd(m) {
    const dollars = m / 1e6;
    const abs = Math.abs(dollars);
    const digits = abs === 0 ? 2 : abs < 0.01 ? 6 : abs < 1 ? 4 : 2;
    return (dollars < 0 ? "-$" : "$") + abs.toFixed(digits);
  }

  /** Micro-dollars as dollars, for chart axes only (display; the API never sends floats). */
  function dollars(m) { return m / 1e6; }

  function percent(share) { return (100 * share).toFixed(1) + "%"; }

  function text(id, value) { document.getElementById(id).textContent = value; }

  function cell(tr, value, cls) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function markReady(el, points) {
    el.dataset.points = String(points);
    el.dataset.ready = "true";
  }

  function markError(el, reason) {
    el.dataset.ready = "error";
    el.dataset.error = reason;
  }

  function setStatus(message, isError) {
    const el = document.getElementById("status");
    el.textContent = message;
    el.classList.toggle("error", Boolean(isError));
  }

  // ---- fetching ----------------------------------------------------------------------------

  class ViewError extends Error {}

  /** The JSON of one cost view for a filter ({tenant, workspace, project}, each optional);
   * a ViewError with the server's reason when it refuses. */
  async function fetchView(path, key, filter) {
    const url = new URL(API + path, window.location.origin);
    for (const name of ["tenant", "workspace", "project"]) {
      if (filter[name]) url.searchParams.set(name, filter[name]);
    }
    const response = await fetch(url, {
      headers: { Authorization: "Bearer " + key, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      let reason = response.statusText;
      try {
        const body = await response.json();
        // Every API error is {"error": {"message", "type", "param", "code"}} (api/errors.py).
        const message = body.error && body.error.message;
        if (typeof message === "string" && message) reason = message;
      } catch (_) { /* not JSON: keep the status text */ }
      throw new ViewError(`${path}: HTTP ${response.status} ${reason}`);
    }
    return response.json();
  }

  // ---- charts ------------------------------------------------------------------------------

  function drawChart(id, config, points, emptyMessage) {
    const canvas = document.getElementById(id);
    const old = charts.get(id);
    if (old) old.destroy();
    const options = config.options || {};
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false },
      options);
    config.options.plugins = Object.assign({ tooltip: { callbacks: { label: tooltipLabel } } },
      options.plugins || {});
    charts.set(id, new Chart(canvas, config));
    const note = canvas.parentElement.querySelector(".empty");
    if (note) note.remove();
    if (points === 0 && emptyMessage) {
      const p = document.createElement("p");
      p.className = "empty overlay";
      p.textContent = emptyMessage;
      canvas.parentElement.appendChild(p);
    }
    markReady(canvas, points);
  }

  function tooltipLabel(ctx) {
    const dataset = ctx.dataset;
    if (dataset.money === false) return `${dataset.label}: ${ctx.formattedValue}`;
    const raw = Array.isArray(ctx.raw) ? ctx.raw[1] : ctx.raw;
    return `${dataset.label}: ${usd(Math.round(raw * 1e6))}`;
  }

  const dollarAxis = () => ({ beginAtZero: true, ticks: { callback: (v) => "$" + v } });

  /** Spend and the naive baseline per day (GET /timeseries), or per hour (GET /hourly) when
   * the ledger spans less than two days. */
  function drawSpend([ts, hourly]) {
    const hours = hourly.hours.length;
    const canvas = document.getElementById("chart-spend");
    if (hours > 0 && hours < HOURLY_BELOW_HOURS) {
      canvas.dataset.granularity = "hour";
      text("spend-title", "Spend per hour (the ledger spans less than two days)");
      drawSpendPerHour(hourly);
    } else {
      canvas.dataset.granularity = "day";
      text("spend-title", "Spend per day");
      drawSpendPerDay(ts);
    }
    drawProducts(ts);
  }

  /** "2026-12-04T09" as "12-04 09:00" (UTC). */
  function hourLabel(hour) { return hour.slice(5, 10) + " " + hour.slice(11, 13) + ":00"; }

  function drawSpendPerHour(h) {
    const datasets = [
      { label: "Spend", data: h.spend_micro_usd.map(dollars), borderColor: PALETTE[0],
        backgroundColor: "rgba(37,99,235,0.15)", fill: true, tension: 0.2 },
    ];
    if (h.baseline_micro_usd) {
      datasets.push({ label: "Baseline (naive path)", data: h.baseline_micro_usd.map(dollars),
        borderColor: PALETTE[4], backgroundColor: PALETTE[4], borderDash: [6, 4], tension: 0.2 });
    }
    datasets.push({ label: "Calls", data: h.calls, borderColor: PALETTE[2],
      backgroundColor: PALETTE[2], yAxisID: "calls", money: false, tension: 0.2 });
    drawChart("chart-spend", {
      type: "line",
      data: { labels: h.hours.map(hourLabel), datasets },
      options: {
        scales: {
          y: dollarAxis(),
          calls: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
            title: { display: true, text: "calls" }, ticks: { precision: 0 } },
        },
      },
    }, h.hours.length, "No spend recorded yet.");
  }

  function drawSpendPerDay(ts) {
    drawChart("chart-spend", {
      type: "line",
      data: {
        labels: ts.days,
        datasets: [
          { label: "Spend", data: ts.spend_micro_usd.map(dollars), borderColor: PALETTE[0],
            backgroundColor: "rgba(37,99,235,0.15)", fill: true, tension: 0.2 },
          { label: "Baseline (naive path)", data: ts.baseline_micro_usd.map(dollars),
            borderColor: PALETTE[4], backgroundColor: PALETTE[4], borderDash: [6, 4], tension: 0.2 },
        ],
      },
      options: { scales: { y: dollarAxis() } },
    }, ts.days.length, "No spend recorded yet.");
  }

  /** What each lever saved against the naive cost, net of its own cost, from each event's
   * split (GET /spend savings_by_lever), and what the lever itself cost (lever_cost_micro_usd). */
  function drawSavings(spend) {
    const levers = Object.entries(spend.savings_by_lever).sort((a, b) => b[1] - a[1]);
    const costs = spend.lever_cost_micro_usd || {};
    const datasets = [{ label: "Saved", data: levers.map(([, m]) => dollars(m)),
      backgroundColor: levers.map((_, i) => PALETTE[(i + 1) % PALETTE.length]) }];
    const costly = Object.keys(costs).length > 0;
    if (costly) {
      datasets.push({ label: "Lever cost", data: levers.map(([name]) => dollars(costs[name] || 0)),
        backgroundColor: PALETTE[0] });
    }
    drawChart("chart-savings", {
      type: "bar",
      data: { labels: levers.map(([name]) => name), datasets },
      options: { indexAxis: "y", scales: { x: dollarAxis() }, plugins: { legend: { display: costly } } },
    }, levers.length, "No savings recorded yet.");
  }

  /** Calls and spend per model (GET /spend by_model). */
  function drawRouting(spend) {
    const models = spend.by_model.slice().sort((a, b) => b.calls - a.calls);
    drawChart("chart-routing", {
      type: "bar",
      data: {
        labels: models.map((m) => m.name),
        datasets: [
          { label: "Calls", data: models.map((m) => m.calls), backgroundColor: PALETTE[0],
            yAxisID: "calls", money: false },
          { label: "Spend", data: models.map((m) => dollars(m.spend_micro_usd)),
            backgroundColor: PALETTE[2], yAxisID: "spend" },
        ],
      },
      options: {
        scales: {
          calls: { position: "left", beginAtZero: true, title: { display: true, text: "calls" } },
          spend: Object.assign(dollarAxis(), { position: "right", grid: { drawOnChartArea: false },
            title: { display: true, text: "spend" } }),
        },
      },
    }, models.length, "No calls recorded yet.");
  }

  /** Cost per product per day, and products seen per day (GET /timeseries). */
  function drawProducts(ts) {
    // null: the ledger keeps workflows for whole tenants only (not by workspace or project).
    const kept = ts.products !== null;
    const products = kept ? ts.products : [];
    const perProduct = kept ? ts.cost_per_product_micro_usd : [];
    const points = products.filter((n) => n > 0).length;
    drawChart("chart-products", {
      type: "bar",
      data: {
        labels: ts.days,
        datasets: [
          { label: "Cost per product", data: perProduct.map(dollars),
            backgroundColor: PALETTE[0], yAxisID: "cost" },
          { type: "line", label: "Products", data: products, borderColor: PALETTE[2],
            backgroundColor: PALETTE[2], yAxisID: "products", money: false },
        ],
      },
      options: {
        scales: {
          cost: Object.assign(dollarAxis(), { position: "left" }),
          products: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
            title: { display: true, text: "products" }, ticks: { precision: 0 } },
        },
      },
    }, points, kept ? "No product workflows recorded yet." :
      "Products are kept per tenant only, not by workspace or project.");
  }

  /** Daily history, then the forecast with its interval (GET /forecast). */
  function drawForecast(fc) {
    const labels = fc.history.map((d) => d.day).concat(fc.daily.map((d) => d.day));
    const pad = (n) => new Array(n).fill(null);
    const history = fc.history.map((d) => dollars(d.spend_micro_usd));
    const ahead = fc.daily.map((d) => dollars(d.spend_micro_usd));
    const lower = fc.daily.map((d) => (d.lower_micro_usd === null ? null : dollars(d.lower_micro_usd)));
    const upper = fc.daily.map((d) => (d.upper_micro_usd === null ? null : dollars(d.upper_micro_usd)));
    const n = fc.history.length;
    const band = `${Math.round(100 * fc.confidence)}% interval`;
    drawChart("chart-forecast", {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "Actual", data: history.concat(pad(fc.daily.length)), borderColor: PALETTE[0],
            backgroundColor: PALETTE[0], pointRadius: 2 },
          { label: "Forecast", data: pad(n).concat(ahead), borderColor: PALETTE[3],
            backgroundColor: PALETTE[3], borderDash: [6, 4], pointRadius: 0 },
          { label: band + " (low)", data: pad(n).concat(lower), borderColor: "rgba(147,51,234,0.25)",
            pointRadius: 0, fill: false },
          { label: band, data: pad(n).concat(upper), borderColor: "rgba(147,51,234,0.25)",
            backgroundColor: "rgba(147,51,234,0.10)", pointRadius: 0, fill: "-1" },
        ],
      },
      options: {
        scales: { y: dollarAxis(), x: { ticks: { maxTicksLimit: 12 } } },
        plugins: { legend: { labels: { filter: (item) => !item.text.endsWith("(low)") } } },
      },
    }, labels.length, fc.status === "ok" ? "No history yet." : fc.reason);
    const next30 = fc.horizons.find((h) => h.days === 30);
    text("total-forecast", next30 ? usd(next30.spend_micro_usd) : "-");
    document.getElementById("total-forecast").title = next30
      ? `${band}: ${usd(next30.lower_micro_usd)} to ${usd(next30.upper_micro_usd)} (${fc.method})`
      : fc.reason;
  }

  // ---- tables ------------------------------------------------------------------------------

  /** Work served without a provider call (caches, dedup, pattern responder, photo reuse,
   * zero-call agents): each by name with its count and what it saved (GET /spend). */
  function drawZeroCall(spend) {
    const rows = spend.by_lever.filter((r) => r.name in ZERO_CALL && r.calls > 0).map((r) => ({
      lever: r.name, calls: r.calls,
      saved: r.name in spend.savings_by_lever ? spend.savings_by_lever[r.name] : r.savings_micro_usd,
    })).sort((a, b) => b.calls - a.calls || a.lever.localeCompare(b.lever));
    fillTable("table-zero-call", rows, 3, "Every call so far went to a provider.", (tr, r) => {
      cell(tr, ZERO_CALL[r.lever]);
      cell(tr, String(r.calls), "num");
      cell(tr, usd(r.saved), "num");
      tr.dataset.lever = r.lever;
    });
    const calls = rows.reduce((n, r) => n + r.calls, 0);
    const saved = rows.reduce((n, r) => n + r.saved, 0);
    const all = spend.totals.calls;
    text("zero-call-total", rows.length
      ? `${calls} of ${all} calls (${percent(all ? calls / all : 0)}) served without a provider ` +
        `call, saving ${usd(saved)}.`
      : "");
  }

  /** ok below 50%, then the highest alert threshold sent (50, 80, 100) or reached. */
  function alertState(b) {
    const sent = b.alerts_sent.length ? Math.max(...b.alerts_sent) : 0;
    const used = b.limit > 0 ? (100 * b.spent) / b.limit : 0;
    if (sent >= 100 || used >= 100) return { cls: "over", label: sent >= 100 ? "100% alert" : "at limit" };
    if (sent >= 80 || used >= 80) return { cls: "high", label: sent >= 80 ? "80% alert" : "at 80%" };
    if (sent >= 50 || used >= 50) return { cls: "warn", label: sent >= 50 ? "50% alert" : "at 50%" };
    return { cls: "ok", label: "ok" };
  }

  function fillTable(id, rows, span, emptyMessage, addRow) {
    const table = document.getElementById(id);
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      addRow(tr, row);
      body.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      cell(tr, emptyMessage, "empty").colSpan = span;
      body.appendChild(tr);
    }
    markReady(table, rows.length);
  }

  /** Spend by project (GET /spend by_project, named workspace/project), or by workspace
   * when no project row is there. */
  function drawPlaces(spend) {
    const rows = spend.by_project.length ? spend.by_project : spend.by_workspace;
    fillTable("table-places", rows, 5, "No spend in this filter.", (tr, r) => {
      cell(tr, r.name);
      cell(tr, String(r.calls), "num");
      cell(tr, usd(r.spend_micro_usd), "num");
      cell(tr, usd(r.baseline_micro_usd), "num");
      cell(tr, usd(r.savings_micro_usd), "num");
      tr.dataset.place = r.name;
      tr.dataset.calls = String(r.calls);
    });
  }

  function drawBudgets(data) {
    fillTable("table-budgets", data.budgets, 9, "No budgets configured.", (tr, b) => {
      const amount = (v) => (b.unit === "usd" ? usd(v) : `${v} msgs`);
      cell(tr, b.budget);
      cell(tr, b.scope);
      cell(tr, `${b.period} ${b.period_key}`);
      cell(tr, b.policy);
      cell(tr, amount(b.limit), "num");
      cell(tr, amount(b.spent), "num");
      cell(tr, amount(b.reserved), "num");
      const state = alertState(b);
      const meter = document.createElement("div");
      meter.className = "meter " + state.cls;
      meter.title = `${percent(b.utilization)} used`;
      const bar = document.createElement("span");
      bar.style.width = Math.min(100, 100 * b.utilization).toFixed(1) + "%";
      meter.appendChild(bar);
      const use = cell(tr, "");
      use.appendChild(meter);
      use.appendChild(document.createTextNode(" " + percent(b.utilization)));
      const badge = document.createElement("span");
      badge.className = "badge " + state.cls;
      badge.textContent = state.label;
      const alert = cell(tr, "");
      alert.appendChild(badge);
      alert.dataset.alert = state.cls;
      tr.dataset.budget = b.budget;
      tr.dataset.scope = b.scope;
    });
  }

  function drawAnomalies(data) {
    const rows = data.spend.map((a) => ({
      hour: a.hour, what: "spend per hour", observed: a.spend_micro_usd,
      usual: a.baseline_micro_usd, score: a.score, cause: a.likely_cause,
    })).concat(data.cost_per_call.map((a) => ({
      hour: a.hour, what: `cost per call of ${a.agent} (${a.calls} calls)`,
      observed: a.cost_per_call_micro_usd, usual: a.baseline_cost_per_call_micro_usd,
      score: a.score, cause: a.likely_cause,
    }))).sort((a, b) => b.score - a.score || b.hour.localeCompare(a.hour));
    fillTable("table-anomalies", rows.slice(0, MAX_ANOMALIES), 6,
      `No anomalies in the last ${data.hours === 1 ? "hour" : `${data.hours} hours`} (${data.method}, threshold ${data.threshold}).`,
      (tr, a) => {
        cell(tr, a.hour);
        cell(tr, a.what);
        cell(tr, usd(a.observed), "num");
        cell(tr, usd(a.usual), "num");
        cell(tr, a.score.toFixed(1), "num");
        cell(tr, a.cause);
      });
    if (rows.length > MAX_ANOMALIES) {
      const tr = document.createElement("tr");
      cell(tr, `${rows.length - MAX_ANOMALIES} more with lower scores (filter by tenant, ` +
        "agent or model to see them).", "empty").colSpan = 6;
      document.getElementById("table-anomalies").tBodies[0].appendChild(tr);
    }
  }

  function drawRecommendations(data) {
    fillTable("table-recommendations", data.items, 3, "Nothing to recommend yet.", (tr, r) => {
      cell(tr, r.title);
      cell(tr, r.detail);
      cell(tr, usd(r.monthly_saving_micro_usd), "num");
    });
  }

  function drawTotals(spend) {
    const t = spend.totals;
    text("total-spend", usd(t.spend_micro_usd));
    text("total-baseline", usd(t.baseline_micro_usd));
    const share = t.baseline_micro_usd > 0 ? ` (${percent(t.savings_micro_usd / t.baseline_micro_usd)})` : "";
    text("total-saved", usd(t.savings_micro_usd) + share);
    text("total-calls", `${t.calls} (${t.paid_calls})`);
    text("total-cache", percent(spend.rates.cache_hit_rate));
    document.getElementById("simulated-note").hidden = !spend.simulated;
    markReady(document.getElementById("totals"), 1);
  }

  // ---- loading -----------------------------------------------------------------------------

  // [path, draw, element ids, whether the view can be narrowed to a workspace or project]
  const VIEWS = [
    ["/spend", (d) => {
      drawTotals(d); drawSavings(d); drawRouting(d); drawZeroCall(d); drawPlaces(d);
    }, ["totals", "chart-savings", "chart-routing", "table-zero-call", "table-places"], true],
    [["/timeseries", "/hourly"], drawSpend, ["chart-spend", "chart-products"], true],
    ["/budgets", drawBudgets, ["table-budgets"], true],
    ["/forecast", drawForecast, ["chart-forecast"], false],
    ["/anomalies", drawAnomalies, ["table-anomalies"], false],
    ["/recommendations", drawRecommendations, ["table-recommendations"], false],
  ];

  /** One view's JSON, or several views' (an array of paths) as an array. The hourly view is
   * kept per tenant only: narrowed to a workspace or project, the chart stays per day. */
  function fetchViews(paths, key, filter, narrowed) {
    if (!Array.isArray(paths)) return fetchView(paths, key, filter);
    return Promise.all(paths.map((path) => (narrowed && path === "/hourly"
      ? Promise.resolve({ hours: [] }) : fetchView(path, key, filter))));
  }

  function describe(filter) {
    const parts = [filter.tenant ? `tenant ${filter.tenant}` : "all tenants"];
    if (filter.workspace) parts.push(`workspace ${filter.workspace}`);
    if (filter.project) parts.push(`project ${filter.project}`);
    return parts.join(", ");
  }

  async function load(key, filter) {
    document.body.dataset.loaded = "false";
    const tenant = filter.tenant;
    setStatus("Loading " + describe(filter) + "...", false);
    const failures = [];
    const narrowed = Boolean(filter.workspace || filter.project);
    await Promise.all(VIEWS.map(async ([path, draw, ids, places]) => {
      if (narrowed && !places) {  // the ledger keeps this view per tenant only
        for (const id of ids) {
          const el = document.getElementById(id);
          el.dataset.ready = "skipped";
          el.dataset.error = "not kept by workspace or project";
        }
        return;
      }
      try {
        draw(await fetchViews(path, key, filter, narrowed));
      } catch (err) {
        const reason = err instanceof ViewError ? err.message : `${path}: ${err}`;
        failures.push(reason);
        for (const id of ids) markError(document.getElementById(id), reason);
        if (!(err instanceof ViewError)) console.error(err);
      }
    }));
    if (failures.length) setStatus("Some views failed: " + failures.join("; "), true);
    else setStatus(`Updated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC for ` +
      describe(filter) + "." +
      (narrowed ? " Forecast, anomalies and recommendations are kept per tenant only." : ""),
    false);
    document.body.dataset.loaded = failures.length ? "partial" : "true";
  }

  function start() {
    const params = new URLSearchParams(window.location.search);
    const keyInput = document.getElementById("api-key");
    const tenantInput = document.getElementById("tenant");
    // A key may come in the fragment (#key=...), which browsers never send to a server (no
    // proxy log, no Referer); never in the query string, which they do send.
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const fromUrl = fragment.get("key");
    if (fromUrl) {
      sessionStorage.setItem(KEY_STORE, fromUrl);
      // Keep the key out of the address bar and the browser history.
      fragment.delete("key");
      const rest = fragment.toString();
      history.replaceState(null, "", window.location.pathname + window.location.search +
        (rest ? "#" + rest : ""));
    }
    keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
    tenantInput.value = params.get("tenant") || "";
    const workspaceInput = document.getElementById("workspace");
    const projectInput = document.getElementById("project");
    workspaceInput.value = params.get("workspace") || "";
    projectInput.value = params.get("project") || "";
    const filter = () => ({
      tenant: tenantInput.value.trim(),
      workspace: workspaceInput.value.trim(),
      project: projectInput.value.trim(),
    });
    document.getElementById("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = keyInput.value.trim();
      if (!key) { setStatus("An API key is needed to read the cost views.", true); return; }
      sessionStorage.setItem(KEY_STORE, key);
      load(key, filter());
    });
    if (keyInput.value) load(keyInput.value, filter());
  }

  document.addEventListener("DOMContentLoaded", start);
})();
