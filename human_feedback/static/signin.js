"use strict";

async function signIn(token) {
  const response = await fetch("/api/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || "sign-in failed");
  return data;
}

async function trySignIn(token) {
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    const who = await signIn(token.trim());
    window.location.assign(who.role === "admin" ? "/admin" : "/annotate");
  } catch (e) {
    error.textContent = e.message;
  }
}

document.getElementById("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  trySignIn(document.getElementById("token").value);
});

// A sign-in link may carry the token in the fragment (#token=...), which browsers never send to servers.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (fragment.get("token")) {
  const token = fragment.get("token");
  history.replaceState(null, "", "/signin");
  trySignIn(token);
}
