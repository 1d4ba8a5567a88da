// Projector status page: refreshes the projections from the JSON API every 2 s and sends the
// commands with the admin token (kept in sessionStorage, this tab only).
"use strict";

(function () {
  const tokenKey = "projector-admin-token";
  const messages = new Map(); // projection name -> {text, ok}
  let busy = false;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const svgNS = "http://www.w3.org/2000/svg";
  function spark(cls, label, pts, value) {
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 120 30");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "spark " + cls);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", points(pts, value));
    svg.append(line);
    return el("figure", {}, svg, el("figcaption", {}, cls === "lag" ? "lag" : "events/s"));
  }

  function points(pts, value) {
    if (!pts || pts.length < 2) return "";
    const top = Math.max(0, ...pts.map(value));
    return pts.map((p, i) => {
      const x = 120 * i / (pts.length - 1);
      const y = top > 0 ? 29 - 28 * value(p) / top : 29;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
  }

  function rates(p, pts) {
    if (!pts || pts.length === 0) return { eps: 0, eta: "" };
    const eps = pts[pts.length - 1].events_per_second;
    const recent = pts.slice(Math.max(pts.length - 6, 1));
    const sum = recent.reduce((s, x) => s + x.positions_per_second, 0);
    if (!recent.length || p.state !== "catching_up" || !p.lag || sum <= 0) return { eps, eta: "" };
    return { eps, eta: duration(p.lag / (sum / recent.length)) };
  }

  function duration(secs) {
    secs = Math.round(secs);
    const h = Math.floor(secs / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + s + "s";
  }

  function figure(label, value) {
    return el("div", {}, el("dt", {}, label), el("dd", {}, value));
  }

  function commandButton(label, command, body, confirmText) {
    return el("button", { type: "button", "data-command": command, "data-body": body, "data-confirm": confirmText }, label);
  }

  function parkedSection(streams) {
    const sec = el("div", { class: "parked" }, el("h3", {}, "Parked streams (" + streams.length + ")"));
    if (streams.length) {
      const body = el("tbody");
      for (const s of streams) {
        const target = JSON.stringify({ stream: s.stream });
        body.append(el("tr", {}, el("td", {}, s.stream), el("td", {}, s.events), el("td", {}, s.position),
          el("td", {}, s.event_type), el("td", { class: "error" }, s.error),
          el("td", {}, commandButton("Resume", "parked/resume", target), " ",
            commandButton("Skip", "parked/skip", target, "Move the parked events of this stream to the dead letters and go on without them?"))));
      }
      sec.append(el("table", {}, el("thead", {}, el("tr", {}, ...["stream", "events", "first position", "type", "error", ""].map((h) => el("th", {}, h)))), body));
    }
    return sec;
  }

  function card(p, pts, letters, parked) {
    const r = rates(p, pts);
    const sec = el("section", { class: "card state-" + p.state, "data-name": p.name },
      el("h2", {}, el("span", { class: "name" }, p.name), " ", el("span", { class: "badge" }, p.state), " ",
        el("span", { class: "role" }, p.leader ? "leader" : "not leading")),
      el("dl", { class: "figures" },
        figure("position", p.position),
        figure("head", p.head ?? "unknown"),
        figure("lag", p.lag ?? "unknown"),
        figure("lag (time)", p.lag_seconds.toFixed(1) + " s"),
        figure("events/s", r.eps.toFixed(1)),
        figure("ETA", r.eta || "–")),
      el("div", { class: "charts" },
        spark("lag", "lag over the last minutes", pts, (x) => x.lag),
        spark("rate", "events per second over the last minutes", pts, (x) => x.events_per_second)));
    if (p.failed) {
      const f = p.failed;
      sec.append(el("div", { class: "failed" }, el("h3", {}, "Stopped on event"),
        el("dl", {}, figure("position", f.position.commit), figure("event id", f.event_id), figure("type", f.type),
          figure("stream", f.stream), el("div", {}, el("dt", {}, "error"), el("dd", { class: "error" }, f.error)))));
    } else if (p.error) {
      sec.append(el("p", { class: "error" }, p.error));
    }
    sec.append(el("div", { class: "commands" },
      commandButton("Resume", "resume"), " ", commandButton("Skip", "skip"), " ",
      commandButton("Reset", "reset", null, "Empty the view and rebuild it from its start?"), " ",
      commandButton("Rebuild", "rebuild", null, "Rebuild the view in a shadow schema and swap it in once it has caught up?"), " ",
      commandButton("Roll back", "rollback", null, "Swap the previous version of the view back in?")));
    if (p.rebuild) {
      const b = p.rebuild;
      sec.append(el("div", { class: "rebuild" }, el("h3", {}, "Building version " + b.version),
        el("dl", { class: "figures" }, figure("position", b.position), figure("serving at", b.serving_position),
          figure("events/s", b.events_per_second.toFixed(1)),
          figure("ETA", b.eta_seconds != null ? Math.round(b.eta_seconds) + " s" : "–"))));
    }
    const m = messages.get(p.name);
    sec.append(el("p", { class: "message" + (m ? (m.ok ? " ok" : " refused") : ""), role: "status" }, m ? m.text : ""));
    const dl = el("div", { class: "dead-letters" }, el("h3", {}, "Dead letters (" + letters.length + ")"));
    if (letters.length) {
      dl.append(el("div", { class: "commands" },
        commandButton("Replay all", "dead-letters/replay", '{"all":true}'), " ",
        commandButton("Purge all", "dead-letters/purge", '{"all":true}', "Delete every dead letter of this projection?")));
      const body = el("tbody");
      for (const d of letters) {
        body.append(el("tr", {}, el("td", {}, d.id), el("td", {}, d.position), el("td", {}, d.event_type),
          el("td", {}, d.stream), el("td", { class: "error" }, d.error),
          el("td", {}, commandButton("Replay", "dead-letters/replay", JSON.stringify({ id: d.id })), " ",
            commandButton("Purge", "dead-letters/purge", JSON.stringify({ id: d.id }), "Delete this dead letter?"))));
      }
      dl.append(el("table", {}, el("thead", {}, el("tr", {}, ...["id", "position", "type", "stream", "error", ""].map((h) => el("th", {}, h)))), body));
    }
    sec.append(dl);
    if (parked.length || p.parked_streams) sec.append(parkedSection(parked));
    return sec;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { cache: "no-store" });
    if (!resp.ok) throw new Error(url + ": " + resp.status);
    return resp.json();
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const [list, hist, dead, parked] = await Promise.all([
        getJSON("/v1/projections"),
        getJSON("/v1/history").catch(() => ({ projections: {} })),
        getJSON("/v1/dead-letters").catch(() => ({ dead_letters: [] })),
        getJSON("/v1/parked").catch(() => ({ parked: [] })),
      ]);
      const parkedBy = new Map();
      for (const s of parked.parked) {
        if (!parkedBy.has(s.projection)) parkedBy.set(s.projection, []);
        parkedBy.get(s.projection).push(s);
      }
      const byName = new Map();
      for (const d of dead.dead_letters) {
        if (!byName.has(d.projection)) byName.set(d.projection, []);
        byName.get(d.projection).push(d);
      }
      const main = document.getElementById("projections");
      const cards = list.projections.map((p) => card(p, hist.projections[p.name] || [], byName.get(p.name) || [], parkedBy.get(p.name) || []));
      main.replaceChildren(...(cards.length ? cards : [el("p", {}, "No projections.")]));
      document.getElementById("head").textContent = list.head ?? "unknown";
      document.getElementById("head-age").textContent = list.head_age_seconds != null ? list.head_age_seconds.toFixed(0) + " s ago" : "";
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.classList.remove("offline");
    } catch (e) {
      document.getElementById("updated").textContent = "cannot reach the daemon: " + e.message;
      document.body.classList.add("offline");
    } finally {
      busy = false;
    }
  }

  async function send(name, command, body) {
    const headers = {};
    const token = sessionStorage.getItem(tokenKey);
    if (token) headers.Authorization = "Bearer " + token;
    if (body) headers["Content-Type"] = "application/json";
    const label = command.replace("dead-letters/", "").replace("parked/", "") + " " + name + (command.startsWith("parked/") && body ? " stream " + JSON.parse(body).stream : "");
    try {
      const resp = await fetch("/v1/projections/" + encodeURIComponent(name) + "/" + command, { method: "POST", headers, body: body || undefined });
      let text = "";
      try {
        const j = await resp.json();
        if (!resp.ok) text = j.error || resp.statusText;
        else if (j.replayed !== undefined) text = "replayed " + j.replayed + " dead letter(s)";
        else if (j.purged !== undefined) text = "purged " + j.purged + " dead letter(s)";
        else if (j.stream !== undefined) text = j.skipped ? "moved " + j.skipped + " parked event(s) to the dead letters" : "replayed " + (j.resumed || 0) + " parked event(s)";
        else text = "accepted; now " + j.state + " at position " + j.position;
      } catch (_) {
        text = resp.statusText;
      }
      messages.set(name, resp.ok ? { ok: true, text: label + ": " + text } : { ok: false, text: label + " refused (" + resp.status + "): " + text });
    } catch (e) {
      messages.set(name, { ok: false, text: label + ": cannot reach the daemon: " + e.message });
    }
    await refresh();
  }

  function showToken() {
    document.getElementById("token-state").textContent = sessionStorage.getItem(tokenKey) ? "token set (this tab only)" : "no token: commands will be refused";
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = document.getElementById("token");
      if (input.value) sessionStorage.setItem(tokenKey, input.value);
      input.value = "";
      showToken();
    });
    document.getElementById("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(tokenKey);
      showToken();
    });
    document.getElementById("projections").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-command]");
      if (!b) return;
      const c = b.closest("[data-name]");
      if (!c) return;
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      b.disabled = true;
      send(c.dataset.name, b.dataset.command, b.dataset.body);
    });
    showToken();
    refresh();
    setInterval(refresh, 2000);
  });
})();
