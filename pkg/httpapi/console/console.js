// Coffer's console: the HTTP API, and its event streams followed live.
"use strict";

const $ = (sel) => document.querySelector(sel);

// key is a new Idempotency-Key for each command the page sends.
function key() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "console-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ApiError is a problem+json answer, readable.
class ApiError extends Error {
  constructor(status, problem) {
    const p = problem || {};
    super((p.title || "HTTP " + status) + (p.detail ? ": " + p.detail : ""));
    this.status = status;
    this.code = p.code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== "GET") {
    init.headers["Idempotency-Key"] = key();
  }
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    throw new ApiError(resp.status, data);
  }
  return data;
}

function say(text, isError) {
  const m = $("#message");
  m.textContent = text;
  m.className = "message" + (isError ? " error" : "");
  m.hidden = false;
}

// follow reads a text/event-stream with fetch (so that every event type
// comes to one handler), and reconnects with the last id it saw.
function follow(path, onEvent) {
  const ctl = new AbortController();
  let last = "";
  (async function loop() {
    while (!ctl.signal.aborted) {
      try {
        const headers = last ? { "Last-Event-ID": last } : {};
        const resp = await fetch(path, { headers, signal: ctl.signal });
        if (!resp.ok || !resp.body) {
          throw new Error("HTTP " + resp.status);
        }
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const ev = { id: "", type: "", data: null };
            for (const line of block.split("\n")) {
              if (line.startsWith("id: ")) ev.id = line.slice(4);
              else if (line.startsWith("event: ")) ev.type = line.slice(7);
              else if (line.startsWith("data: ")) ev.data = JSON.parse(line.slice(6));
            }
            if (ev.id) {
              last = ev.id;
              onEvent(ev);
            }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return () => ctl.abort();
}

// The wallet on display.
let walletID = "";
let stopWallet = () => {};

// showWallet reads the wallet and its newest transactions, and returns its
// version (-1 if it could not be read).
async function showWallet() {
  if (!walletID) return -1;
  let w;
  try {
    w = await api("GET", "/wallet/" + walletID);
  } catch (e) {
    if (e.status === 404) {
      w = { balance: 0, available: 0, held: 0, status: "unused", version: 0 };
    } else {
      say(e.message, true);
      return -1;
    }
  }
  $("#w-balance").textContent = w.balance;
  $("#w-available").textContent = w.available ?? w.balance;
  $("#w-held").textContent = w.held ?? 0;
  $("#w-status").textContent = w.status;
  $("#w-version").textContent = w.version;
  const page = await api("GET", "/wallet/" + walletID + "/transactions?include=rejected&limit=20");
  const rows = page.transactions.map((t) => {
    const tr = document.createElement("tr");
    if (t.type.endsWith("_rejected")) tr.className = "refused";
    for (const v of [t.version, t.type, t.amount, t.balance_after, new Date(t.timestamp).toLocaleTimeString()]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  });
  $("#transactions").replaceChildren(...rows);
  return w.version;
}

// refresh reads the wallet again once per burst of its events: one read
// at a time, and one more after it if events came meanwhile.
let reading = false;
let again = false;
async function refresh() {
  if (reading) {
    again = true;
    return;
  }
  reading = true;
  do {
    again = false;
    await showWallet();
  } while (again);
  reading = false;
}

async function openWallet(id) {
  walletID = id;
  $("#wallet-id").value = id;
  $("#wallet").hidden = false;
  history.replaceState(null, "", "#" + id);
  stopWallet();
  stopWallet = () => {};
  const version = await showWallet();
  if (walletID !== id) return; // another was opened meanwhile
  // Each event after the version shown: read the wallet again, at once.
  stopWallet = follow("/wallet/" + id + "/events?from_version=" + Math.max(0, version), () => refresh());
}

function amountOf(form) {
  return Number(new FormData(form).get("amount"));
}

function command(formSel, run) {
  $(formSel).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!walletID && formSel !== "#item-form") {
      say("Open or create a wallet first.", true);
      return;
    }
    try {
      say(await run(ev.target), false);
      ev.target.reset();
    } catch (e) {
      say(e.message, true);
    }
  });
}

command("#credit-form", async (f) => {
  const r = await api("POST", "/wallet/" + walletID + "/credit", { amount: amountOf(f) });
  return "Credited " + r.transaction.amount + "; balance " + r.balance + ".";
});
command("#debit-form", async (f) => {
  const r = await api("POST", "/wallet/" + walletID + "/debit", { amount: amountOf(f) });
  return "Debited " + -r.transaction.amount + "; balance " + r.balance + ".";
});
command("#hold-form", async (f) => {
  const d = new FormData(f);
  const r = await api("POST", "/wallet/" + walletID + "/holds", { amount: Number(d.get("amount")), expires_in: Number(d.get("expires_in")) });
  return "Held " + r.amount + " until " + new Date(r.expires_at).toLocaleString() + " (hold " + r.hold_id + ").";
});
command("#transfer-form", async (f) => {
  const d = new FormData(f);
  const r = await api("POST", "/transfers", { from: walletID, to: String(d.get("to")).trim(), amount: Number(d.get("amount")) });
  return "Transfer " + r.transfer_id + ": " + r.status + ".";
});
command("#item-form", async (f) => {
  const d = new FormData(f);
  const r = await api("POST", "/items", { name: d.get("name"), price: Number(d.get("price")), stock: Number(d.get("stock") || 0) });
  showItems();
  return "Added " + r.name + " (" + r.item_id + ").";
});

$("#wallet-open").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = $("#wallet-id").value.trim();
  if (id) openWallet(id);
});
$("#wallet-create").addEventListener("click", async () => {
  try {
    const w = await api("POST", "/wallet");
    openWallet(w.wallet_id);
    say("Opened wallet " + w.wallet_id + ".", false);
  } catch (e) {
    say(e.message, true);
  }
});

// The shop: items, and orders by the wallet on display.
async function showItems() {
  let page;
  try {
    page = await api("GET", "/items?limit=50");
  } catch (e) {
    return;
  }
  const rows = page.items.map((it) => {
    const tr = document.createElement("tr");
    for (const v of [it.name, it.price, it.stock, it.reserved, it.sold]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Order 1";
    b.addEventListener("click", () => order(it));
    td.appendChild(b);
    tr.appendChild(td);
    return tr;
  });
  $("#items").replaceChildren(...rows);
}

async function order(it) {
  if (!walletID) {
    say("Open or create a wallet first: it pays for the order.", true);
    return;
  }
  const li = document.createElement("li");
  try {
    const o = await api("POST", "/orders", { wallet_id: walletID, lines: [{ item_id: it.item_id, quantity: 1 }] });
    li.textContent = "Order " + o.order_id + ": 1 × " + it.name + ", " + o.total + ", " + o.status;
    say("Order " + o.status + ".", false);
  } catch (e) {
    li.textContent = "Order of 1 × " + it.name + ": " + e.message;
    li.className = "refused";
    say(e.message, true);
  }
  $("#orders").prepend(li);
  showItems();
}

// The global feed.
let stopFeed = () => {};
function followFeed(domain, type) {
  stopFeed();
  $("#feed").replaceChildren();
  // From now on: a long history is not replayed into the page.
  const q = new URLSearchParams({ from_seq: "now" });
  if (domain) q.set("domain", domain);
  if (type) q.set("type", type);
  const path = "/events?" + q;
  let pendingItems = false;
  stopFeed = follow(path, (ev) => {
    const e = ev.data;
    const li = document.createElement("li");
    li.value = Number(ev.id);
    li.textContent = e.domain + " " + e.stream_id + " v" + e.version + " " + e.type + " " + JSON.stringify(e.data);
    const feed = $("#feed");
    feed.prepend(li);
    while (feed.children.length > 100) feed.lastChild.remove();
    if (e.domain === "item" && !pendingItems) {
      pendingItems = true;
      setTimeout(() => { pendingItems = false; showItems(); }, 200);
    }
  });
}
$("#feed-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const d = new FormData(ev.target);
  followFeed(String(d.get("domain")), String(d.get("type")).trim());
});

// The system: readiness, and how far behind each writer is.
async function showStatus() {
  try {
    const resp = await fetch("/status");
    const s = await resp.json();
    const badge = $("#health-status");
    badge.textContent = s.status;
    badge.className = "badge " + (s.status === "ready" ? "ok" : "bad");
    $("#health-checks").textContent = Object.entries(s.checks).map(([k, v]) => k + ": " + v).join(" · ");
    $("#streams").textContent = s.streams;
    const rows = s.writers.map((w) => {
      const tr = document.createElement("tr");
      for (const v of [w.partition, w.serving ? "yes" : "no", w.queue_depth, w.projection_lag_versions, w.outbox_lag_events]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      return tr;
    });
    $("#writers").replaceChildren(...rows);
  } catch (e) {
    $("#health-status").textContent = "unreachable";
    $("#health-status").className = "badge bad";
  }
}

showStatus();
setInterval(showStatus, 2000);
showItems();
followFeed("", "");
if (location.hash.length > 1) openWallet(location.hash.slice(1));
