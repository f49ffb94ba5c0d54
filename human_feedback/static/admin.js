// The admin view: progress, agreement, annotator statistics and attention checks, MOS, export.
"use strict";

const $ = (id) => document.getElementById(id);
const CRITERIA = [["empathy", "Empathy"], ["appropriateness", "Appropriateness"], ["engagement", "Engagement"], ["naturalness", "Naturalness"]];
let current = null;

function fmt(value, digits = 2) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

function interval(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v.alpha ?? v.mean)) return "undefined";
  const centre = v.alpha ?? v.mean;
  const ci = Number.isNaN(v.low) || v.low === null ? "" : ` [${fmt(v.low, digits)}, ${fmt(v.high, digits)}]`;
  return `${fmt(centre, digits)}${ci}`;
}

function table(node, headers, rows) {
  node.replaceChildren(el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { class: typeof c === "number" ? "num" : null, text: c })))))));
}

function stat(label, value, share) {
  const node = el("div", { class: "panel stat" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }));
  if (share !== undefined) {
    const fill = el("span");
    fill.style.width = `${Math.round(Math.min(1, share) * 100)}%`;
    node.append(el("div", { class: "bar" }, fill));
  }
  return node;
}

function badge(ok, text) { return el("span", { class: ok === null ? "badge" : ok ? "badge ok" : "badge bad", text }); }

async function showCampaign(name) {
  current = name;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.name === name));
  const [c, mos] = await Promise.all([
    api("GET", `/api/admin/campaigns/${encodeURIComponent(name)}`),
    api("GET", `/api/admin/campaigns/${encodeURIComponent(name)}/mos`),
  ]);
  $("stats").replaceChildren(
    stat("Groups complete", `${c.groups_complete} / ${c.groups}`, c.groups ? c.groups_complete / c.groups : 0),
    stat("Pages submitted", `${c.pages_done} / ${c.pages_needed}`, c.pages_needed ? c.pages_done / c.pages_needed : 0),
    stat("Ratings", String(c.ratings)),
    stat("Annotators", String(c.annotators.length)),
    stat("Raters per group", String(c.ratings_per_group)),
  );
  table($("agreement"), ["Criterion", "Ordinal", "Interval", "Candidates rated twice or more"],
    CRITERIA.map(([key, title]) => [title, interval(c.agreement[key].ordinal), interval(c.agreement[key].interval), c.agreement[key].ordinal.units]));
  table($("annotators"), ["Annotator", "Kind", "Pages", "Open", "Median s / page", "Watched s / page", "Played s / video", "Mean rating", "Broken-candidate checks", "Repeated pages (mean |Δ|)", "Status"],
    c.annotators.map((a) => [a.name, a.kind, a.pages_done, a.pages_open, fmt(a.median_page_seconds, 1), fmt(a.median_view_seconds, 1), fmt(a.median_reported_play_seconds, 1), fmt(a.mean_rating),
      a.broken_checks ? `${a.broken_passed} / ${a.broken_checks} passed` : "–",
      a.repeat_checks ? `${a.repeat_passed} / ${a.repeat_checks} (${fmt(a.repeat_mean_abs_diff)})` : "–",
      a.flagged ? badge(false, "flagged") : badge(a.broken_checks + a.repeat_checks ? true : null, a.broken_checks + a.repeat_checks ? "ok" : "no checks yet")]));
  if (c.annotators.some((a) => a.flagged)) {
    const reasons = c.annotators.filter((a) => a.flagged).map((a) => `${a.name}: ${a.flag_reasons.join("; ")}`).join(" · ");
    $("annotators").title = reasons;
  }
  table($("mos"), ["Method", "App.", "Emp.", "Eng.", "Nat.", "Ratings"],
    mos.rows.map((r) => [r.method, interval(r.appropriateness), interval(r.empathy), interval(r.engagement), interval(r.naturalness), r.ratings]));
  $("csv").href = `/api/admin/campaigns/${encodeURIComponent(name)}/ratings.csv`;
  $("campaign").classList.remove("hidden");
}

async function download(event) {
  event.preventDefault();
  const form = new FormData($("export"));
  const weights = ["emp", "app", "eng", "nat"].map((k) => `${k}=${form.get(k)}`).join(",");
  const params = new URLSearchParams({ weights, mode: form.get("mode"), min_margin: form.get("min_margin") });
  if (form.get("exclude_flagged")) params.set("exclude_flagged", "true");
  $("export-error").textContent = "";
  const response = await fetch(`/api/admin/campaigns/${encodeURIComponent(current)}/export.zip?${params}`, { credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    $("export-error").textContent = data.detail || response.statusText;
    return;
  }
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: `${current}-preferences.zip` });
  document.body.append(link);
  link.click();
  link.remove();
}

async function main() {
  $("signout").addEventListener("click", signOut);
  $("refresh").addEventListener("click", () => current && showCampaign(current));
  $("export").addEventListener("submit", download);
  const me = await api("GET", "/api/me");
  $("who").textContent = me.name;
  const campaigns = await api("GET", "/api/admin/campaigns");
  if (!campaigns.length) { $("empty").classList.remove("hidden"); return; }
  $("tabs").replaceChildren(...campaigns.map((c) => el("button", { type: "button", "data-name": c.name, onclick: () => showCampaign(c.name) }, c.name)));
  const wanted = new URLSearchParams(window.location.search).get("campaign");
  await showCampaign(campaigns.some((c) => c.name === wanted) ? wanted : campaigns[campaigns.length - 1].name);
}

main().catch((e) => { $("empty").replaceChildren(el("h2", { text: "Could not load" }), el("p", { class: "muted", text: e.message })); $("empty").classList.remove("hidden"); });
