// The annotation page: one group of candidate videos, four 1-5 ratings each, submit, next.
"use strict";

const state = { campaign: null, page: null, rubric: [], ratings: {}, watched: {}, playedMs: {}, started: 0 };
const $ = (id) => document.getElementById(id);

function show(id) {
  for (const part of ["chooser", "done", "task"]) $(part).classList.toggle("hidden", part !== id);
  $("footer").classList.toggle("hidden", id !== "task");
}

function setProgress(progress) {
  const total = progress.done + progress.remaining;
  const share = total ? progress.done / total : 1;
  $("progress-bar").style.width = `${Math.round(share * 100)}%`;
  $("progress-label").textContent = `${progress.done} rated · ${progress.remaining} to go`;
}

function renderRubric(criteria) {
  const box = $("rubric");
  box.replaceChildren(el("h2", { text: "Rating guide" }),
    el("p", { class: "muted small", text: "1 = very poor · 3 = acceptable · 5 = excellent" }));
  for (const c of criteria) {
    box.append(el("div", { class: "crit-def" },
      el("h3", { text: c.title }),
      el("p", { class: "q", text: c.question }),
      el("p", { text: c.definition }),
      el("ul", { class: "levels" }, c.levels.map((text, i) => el("li", {}, el("b", { text: String(i + 1) }), el("span", { text }))))));
  }
}

function ratingRow(item, criterion, locked) {
  const name = `${item.item_id}-${criterion.key}`;
  const scale = el("div", { class: locked ? "scale locked" : "scale", role: "radiogroup", "aria-label": `${criterion.title}, listener ${item.label}` });
  for (let value = 1; value <= 5; value++) {
    const input = el("input", { type: "radio", name, value: String(value), disabled: locked,
      "data-item": item.item_id, "data-criterion": criterion.key, "aria-label": `${criterion.title} ${value}: ${criterion.levels[value - 1]}` });
    input.addEventListener("change", () => choose(item.item_id, criterion.key, value, scale));
    scale.append(el("label", { title: criterion.levels[value - 1] }, input, el("span", { text: String(value) })));
  }
  return el("div", { class: "rating-row" }, el("span", { class: "crit", text: criterion.title }), scale);
}

function choose(itemId, key, value, scale) {
  state.ratings[itemId][key] = value;
  scale.querySelectorAll("label").forEach((label, i) => label.classList.toggle("checked", i + 1 === value));
  updateStatus();
}

function renderCard(item, requireView) {
  state.ratings[item.item_id] = {};
  state.watched[item.item_id] = !requireView || !item.video_url;
  state.playedMs[item.item_id] = 0;
  const badge = el("span", { class: "badge", text: item.video_url ? "Not played yet" : "No video" });
  const rows = el("div", { class: "ratings" });
  const hint = el("div", { class: "lock-hint", text: "Play the video to the end to unlock the ratings." });
  if (state.watched[item.item_id]) hint.classList.add("hidden");
  rows.append(hint);
  for (const c of state.rubric) rows.append(ratingRow(item, c, !state.watched[item.item_id]));
  rows.append(el("div", { class: "rating-row" }, el("span"), el("div", { class: "scale-ends" }, el("span", { text: "very poor" }), el("span", { text: "excellent" }))));

  let media;
  if (item.video_url) {
    const video = el("video", { src: item.video_url, controls: true, preload: "auto", playsinline: true, muted: true,
      "data-item": item.item_id, "aria-label": `Listener ${item.label}` });
    let last = null;
    video.addEventListener("play", () => { badge.textContent = "Playing"; badge.className = "badge warn"; last = performance.now(); });
    video.addEventListener("pause", () => { if (last !== null) state.playedMs[item.item_id] += performance.now() - last; last = null; });
    video.addEventListener("error", () => {
      badge.textContent = "Video failed to load"; badge.className = "badge bad";
      hint.textContent = "This video could not be loaded. Reload the page; if it persists, tell the study organiser.";
    });
    video.addEventListener("ended", () => {
      if (last !== null) state.playedMs[item.item_id] += performance.now() - last;
      last = null;
      badge.textContent = "Watched"; badge.className = "badge ok";
      if (!state.watched[item.item_id]) unlock(item.item_id, rows, hint);
    });
    media = el("div", { class: "video-box" }, video,
      el("div", { class: "video-caption" }, el("span", { text: "Speaker" }), el("span", { text: `Listener ${item.label}` })));
  } else {
    media = el("div", { class: "video-box" }, el("div", { class: "no-video", text: "This candidate has no video." }));
  }
  return el("article", { class: "panel card", "data-item": item.item_id },
    el("div", { class: "card-head" }, el("span", { class: "card-title", text: `Listener ${item.label}` }), badge),
    media, rows);
}

function unlock(itemId, rows, hint) {
  state.watched[itemId] = true;
  hint.classList.add("hidden");
  rows.querySelectorAll("input").forEach((input) => { input.disabled = false; });
  rows.querySelectorAll(".scale").forEach((scale) => scale.classList.remove("locked"));
  updateStatus();
}

function missing() {
  let count = 0;
  for (const item of state.page.items) count += state.rubric.filter((c) => !state.ratings[item.item_id][c.key]).length;
  return count;
}

function updateStatus() {
  const left = missing();
  const status = $("status");
  status.className = "status";
  status.textContent = left ? `${left} rating${left === 1 ? "" : "s"} left on this page` : "All rated. Ready to submit.";
  $("submit").disabled = left > 0;
}

function renderPage(page) {
  state.page = page;
  state.ratings = {}; state.watched = {}; state.playedMs = {};
  state.started = performance.now();
  $("campaign-name").textContent = page.campaign;
  setProgress(page.progress);
  $("instructions").textContent = page.instructions || "";
  $("instructions").classList.toggle("hidden", !page.instructions);
  const words = page.transcript.map((w) => w[2]).join(" ");
  $("transcript").replaceChildren(el("b", { text: "Speaker says:" }), words || "(no words in this clip)");
  $("transcript").classList.remove("hidden");
  $("cards").replaceChildren(...page.items.map((item) => renderCard(item, page.require_full_view)));
  show("task");
  updateStatus();
  window.scrollTo(0, 0);
}

function submissionId(assignmentId) {
  // One id per page, kept across reloads, so a retried or repeated submit is recognised by the server.
  const key = `dyadic-submission-${assignmentId}`;
  let id = sessionStorage.getItem(key);
  if (!id) { id = randomId(); sessionStorage.setItem(key, id); }
  return id;
}

async function submit() {
  const page = state.page;
  const body = {
    submission_id: submissionId(page.assignment_id),
    time_spent_ms: Math.round(performance.now() - state.started),
    ratings: page.items.map((item) => ({ item_id: item.item_id, ...state.ratings[item.item_id],
      watched_ms: Math.round(state.playedMs[item.item_id] || 0) })),
  };
  $("submit").disabled = true;
  const status = $("status");
  for (let attempt = 0; attempt < 6; attempt++) {
    try {
      await api("POST", `/api/assignments/${page.assignment_id}/submit`, body);
      sessionStorage.removeItem(`dyadic-submission-${page.assignment_id}`);
      status.className = "status ok";
      status.textContent = "Saved. Loading the next page…";
      await sleep(400);
      return loadNext();
    } catch (e) {
      if (e.status && e.status < 500) {
        status.className = "status err";
        status.textContent = e.message;
        $("submit").disabled = false;
        return;
      }
      status.className = "status err";
      status.textContent = `Connection problem, retrying (${attempt + 1})…`;
      await sleep(500 * 2 ** attempt);
    }
  }
  status.textContent = "Could not reach the server. Your ratings are still here; press Submit again.";
  $("submit").disabled = false;
}

async function loadNext() {
  const next = await api("POST", `/api/campaigns/${encodeURIComponent(state.campaign)}/next`);
  if (!next.assignment) {
    const me = await api("GET", "/api/me");
    const mine = me.campaigns.find((c) => c.name === state.campaign);
    if (mine) setProgress(mine);
    $("done").replaceChildren(el("h2", { text: "All done, thank you!" }), el("p", { class: "muted", text: next.message }));
    show("done");
    return;
  }
  renderPage(next.assignment);
}

function chooseCampaign(campaigns) {
  const box = $("chooser");
  box.replaceChildren(el("h2", { text: "Choose a campaign" }));
  for (const c of campaigns) {
    box.append(el("p", {}, el("button", { type: "button", onclick: () => start(c.name) }, c.name),
      el("span", { class: "muted small", text: `  ${c.done} rated · ${c.remaining} to go` })));
  }
  show("chooser");
}

async function start(name) {
  state.campaign = name;
  history.replaceState(null, "", `/annotate?campaign=${encodeURIComponent(name)}`);
  await loadNext();
}

async function main() {
  $("signout").addEventListener("click", signOut);
  $("submit").addEventListener("click", submit);
  const [me, rubric] = await Promise.all([api("GET", "/api/me"), api("GET", "/api/rubric")]);
  state.rubric = rubric;
  renderRubric(rubric);
  $("who").textContent = me.name;
  const wanted = new URLSearchParams(window.location.search).get("campaign");
  const open = me.campaigns.filter((c) => c.remaining > 0 || c.name === wanted);
  if (wanted) return start(wanted);
  if (open.length === 1) return start(open[0].name);
  if (open.length === 0) {
    $("done").replaceChildren(el("h2", { text: "Nothing to rate right now" }), el("p", { class: "muted", text: "There are no pages waiting for you. Thank you!" }));
    return show("done");
  }
  chooseCampaign(open);
}

main().catch((e) => {
  $("done").replaceChildren(el("h2", { text: "Something went wrong" }), el("p", { class: "muted", text: e.message }));
  show("done");
});
