// The annotation page: one group of candidate videos, four 1-5 ratings each, submit, next.
// Keyboard: 1-5 rate the highlighted criterion and move on; arrows move (up/down: criterion, left/right:
// video); P plays the highlighted video, A plays all; Enter submits. Every request that fails for want of
// a connection or a server answer is retried, then offered again with a Retry button (withRetry).
"use strict";

const state = { campaign: null, page: null, rubric: [], ratings: {}, watched: {}, playedMs: {}, started: 0,
  cursor: { item: 0, crit: 0 }, cards: [], busy: false };
const $ = (id) => document.getElementById(id);
// Share of a video's length that must actually play (wall-clock time while playing) before its ratings
// unlock: seeking to the end does not count. The server keeps its own rule (see viewing.py).
const MIN_PLAYED_SHARE = 0.8;

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

// ------------------------------------------------------------------------------------------ retrying

function transient(e) {
  // No answer (network), a server error, or too many requests: worth trying again. Other 4xx are answers.
  return !(e instanceof ApiError) || e.status >= 500 || e.status === 429;
}

function problem(text, retry) {
  const box = $("problem");
  if (!text) { box.classList.add("hidden"); return; }
  const button = el("button", { type: "button", class: "primary", id: "retry" }, "Retry");
  if (retry) button.addEventListener("click", retry, { once: true });
  box.replaceChildren(el("span", { text }), retry ? button : "");
  box.classList.remove("hidden");
}

async function withRetry(what, action) {
  // A few automatic tries with backoff, then a Retry button; resolves with the action's result.
  for (;;) {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const result = await action();
        problem(null);
        return result;
      } catch (e) {
        if (!transient(e)) { problem(null); throw e; }
        problem(`Could not ${what} (${e.message}); trying again…`);
        await sleep(400 * 2 ** attempt);
      }
    }
    await new Promise((resolve) => problem(`Could not ${what}. Check your connection, then press Retry.`, resolve));
  }
}

// ------------------------------------------------------------------------------------------ rubric and cards

function renderRubric(criteria) {
  const box = $("rubric");
  box.replaceChildren(el("h2", { text: "Rating guide" }),
    el("p", { class: "muted small", text: "1 = very poor · 3 = acceptable · 5 = excellent" }),
    el("p", { class: "muted small keys", text: "Keys: 1–5 rate · ↑ ↓ criterion · ← → video · P play · A play all · Enter submit" }));
  for (const c of criteria) {
    box.append(el("div", { class: "crit-def" },
      el("h3", { text: c.title }),
      el("p", { class: "q", text: c.question }),
      el("p", { text: c.definition }),
      el("ul", { class: "levels" }, c.levels.map((text, i) => el("li", {}, el("b", { text: String(i + 1) }), el("span", { text }))))));
  }
}

function ratingRow(item, criterion, index, locked) {
  const name = `${item.item_id}-${criterion.key}`;
  const scale = el("div", { class: locked ? "scale locked" : "scale", role: "radiogroup", "aria-label": `${criterion.title}, listener ${item.label}` });
  for (let value = 1; value <= 5; value++) {
    const input = el("input", { type: "radio", name, value: String(value), disabled: locked,
      "data-item": item.item_id, "data-criterion": criterion.key, "aria-label": `${criterion.title} ${value}: ${criterion.levels[value - 1]}` });
    input.addEventListener("change", () => choose(item.item_id, criterion.key, value));
    scale.append(el("label", { title: criterion.levels[value - 1] }, input, el("span", { text: String(value) })));
  }
  const row = el("div", { class: "rating-row", "data-criterion": criterion.key }, el("span", { class: "crit", text: criterion.title }), scale);
  row.addEventListener("click", () => moveCursor(state.page.items.indexOf(item), index));
  return row;
}

function choose(itemId, key, value) {
  state.ratings[itemId][key] = value;
  const card = document.querySelector(`article.card[data-item="${itemId}"]`);
  const row = card.querySelector(`.rating-row[data-criterion="${key}"]`);
  row.querySelectorAll("label").forEach((label, i) => label.classList.toggle("checked", i + 1 === value));
  row.querySelectorAll("input")[value - 1].checked = true;
  updateStatus();
}

function trackPlaying(video, item, badge, rows, hint) {
  let since = null;
  const stop = () => { if (since !== null) state.playedMs[item.item_id] += performance.now() - since; since = null; };
  video.addEventListener("play", () => { badge.textContent = "Playing"; badge.className = "badge warn"; since = performance.now(); });
  video.addEventListener("pause", stop);
  video.addEventListener("ended", () => {
    stop();
    const needed = MIN_PLAYED_SHARE * video.duration * 1000;
    if (state.watched[item.item_id] || state.playedMs[item.item_id] >= needed) {
      badge.textContent = "Watched"; badge.className = "badge ok";
      if (!state.watched[item.item_id]) unlock(item.item_id, rows, hint);
    } else {
      badge.textContent = "Not watched in full"; badge.className = "badge warn";
      hint.textContent = "Watch the whole video; skipping ahead does not count. Press play to watch it again.";
    }
  });
  video.addEventListener("error", () => {
    badge.textContent = "Video failed to load"; badge.className = "badge bad";
    hint.replaceChildren("This video could not be loaded. ",
      el("button", { type: "button", class: "link-button", onclick: () => { hint.textContent = "Loading the video again…"; video.load(); } }, "Load it again"));
  });
  video.addEventListener("loadeddata", () => { if (badge.classList.contains("bad")) { badge.textContent = "Not played yet"; badge.className = "badge"; hint.textContent = lockText(); } });
}

function lockText() { return "Play the video to the end to unlock the ratings."; }

function renderCard(item, requireView) {
  state.ratings[item.item_id] = {};
  state.watched[item.item_id] = !requireView || !item.video_url;
  state.playedMs[item.item_id] = 0;
  const badge = el("span", { class: "badge", text: item.video_url ? "Not played yet" : "No video" });
  const rows = el("div", { class: "ratings" });
  const hint = el("div", { class: "lock-hint", text: lockText() });
  if (state.watched[item.item_id]) hint.classList.add("hidden");
  rows.append(hint);
  state.rubric.forEach((c, i) => rows.append(ratingRow(item, c, i, !state.watched[item.item_id])));
  rows.append(el("div", { class: "rating-row" }, el("span"), el("div", { class: "scale-ends" }, el("span", { text: "very poor" }), el("span", { text: "excellent" }))));
  let media;
  if (item.video_url) {
    const video = el("video", { src: item.video_url, controls: true, preload: "auto", playsinline: true, muted: true,
      "data-item": item.item_id, "aria-label": `Listener ${item.label}` });
    trackPlaying(video, item, badge, rows, hint);
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

function playAll() {
  for (const video of document.querySelectorAll("#cards video")) {
    video.currentTime = 0;
    video.play().catch(() => {});  // a video that cannot play shows its own error
  }
}

// ------------------------------------------------------------------------------------------ keyboard

function moveCursor(item, crit) {
  const items = state.page.items.length, crits = state.rubric.length;
  state.cursor = { item: (item + items) % items, crit: (crit + crits) % crits };
  document.querySelectorAll(".rating-row.cursor").forEach((row) => row.classList.remove("cursor"));
  const card = document.querySelectorAll("article.card")[state.cursor.item];
  const row = card.querySelector(`.rating-row[data-criterion="${state.rubric[state.cursor.crit].key}"]`);
  row.classList.add("cursor");
  row.scrollIntoView({ block: "nearest" });
}

function step(delta) {
  // Next/previous criterion, running on into the next/previous video.
  let { item, crit } = state.cursor;
  crit += delta;
  if (crit >= state.rubric.length) { crit = 0; item += 1; }
  if (crit < 0) { crit = state.rubric.length - 1; item -= 1; }
  moveCursor(item, crit);
}

function rateByKey(value) {
  const item = state.page.items[state.cursor.item];
  if (!state.watched[item.item_id]) {
    const status = $("status");
    status.className = "status err";
    status.textContent = `Play listener ${item.label}'s video to the end before rating it (P plays it).`;
    return;
  }
  choose(item.item_id, state.rubric[state.cursor.crit].key, value);
  step(1);
}

function onKey(event) {
  if (!state.page || $("task").classList.contains("hidden") || event.ctrlKey || event.metaKey || event.altKey) return;
  const video = () => document.querySelectorAll("article.card")[state.cursor.item].querySelector("video");
  const actions = {
    ArrowDown: () => step(1), ArrowUp: () => step(-1),
    ArrowRight: () => moveCursor(state.cursor.item + 1, state.cursor.crit),
    ArrowLeft: () => moveCursor(state.cursor.item - 1, state.cursor.crit),
    p: () => { const v = video(); if (v) (v.paused ? v.play() : v.pause()); },
    a: playAll,
    Enter: () => { if (!$("submit").disabled) submit(); },
  };
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  // Enter on a focused Submit or Retry button is that button's own click; elsewhere it submits the page.
  if (key === "Enter" && ["submit", "retry"].includes(document.activeElement && document.activeElement.id)) return;
  if (/^[1-5]$/.test(key)) { event.preventDefault(); rateByKey(Number(key)); return; }
  if (actions[key]) { event.preventDefault(); actions[key](); }
}

// ------------------------------------------------------------------------------------------ pages

function missing() {
  let count = 0;
  for (const item of state.page.items) count += state.rubric.filter((c) => !state.ratings[item.item_id][c.key]).length;
  return count;
}

function updateStatus() {
  const left = missing();
  const status = $("status");
  status.className = "status";
  status.textContent = left ? `${left} rating${left === 1 ? "" : "s"} left on this page` : "All rated. Ready to submit (Enter).";
  $("submit").disabled = left > 0 || state.busy;
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
  $("play-all").classList.toggle("hidden", !page.items.some((item) => item.video_url));
  show("task");
  state.busy = false;
  updateStatus();
  moveCursor(0, 0);
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
  state.busy = true;
  $("submit").disabled = true;
  const status = $("status");
  try {
    await withRetry("save your ratings", () => api("POST", `/api/assignments/${page.assignment_id}/submit`, body));
  } catch (e) {
    status.className = "status err";
    status.textContent = e.message;
    state.busy = false;
    $("submit").disabled = false;
    return;
  }
  sessionStorage.removeItem(`dyadic-submission-${page.assignment_id}`);
  status.className = "status ok";
  status.textContent = "Saved. Loading the next page…";
  await loadNext();
}

async function loadNext() {
  const next = await withRetry("load the next page", () => api("POST", `/api/campaigns/${encodeURIComponent(state.campaign)}/next`));
  if (!next.assignment) {
    const me = await withRetry("load your progress", () => api("GET", "/api/me"));
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
  $("play-all").addEventListener("click", (event) => { playAll(); event.currentTarget.blur(); });
  document.addEventListener("keydown", onKey, true);
  const [me, rubric] = await withRetry("load the page", () => Promise.all([api("GET", "/api/me"), api("GET", "/api/rubric")]));
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
