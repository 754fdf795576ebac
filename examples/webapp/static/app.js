// Local times: the server renders every time in UTC inside
// <time datetime="...">; show it in the browser's time zone instead, with
// the UTC original as a tooltip.
(function () {
  "use strict";
  var fmt = window.Intl && Intl.DateTimeFormat
    ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" })
    : null;

  function localise(el) {
    var iso = el.getAttribute("datetime");
    if (!iso) return;
    var d = new Date(iso);
    if (isNaN(d.getTime())) return;
    if (!el.title) el.title = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    el.textContent = fmt ? fmt.format(d) : d.toLocaleString();
    el.classList.add("local");
  }

  function localiseAll(root) {
    var list = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < list.length; i++) localise(list[i]);
  }

  window.sessioncapLocalise = localise;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { localiseAll(); });
  else localiseAll();
})();

// Live sign-out banner: the server streams this user's session events; when
// this device's session ends, ask /api/me why (the tombstone is the truth,
// the event only a prompt) and show the answer without a reload. /api/me's
// 401 body is the same endingView the server renders into #banner, so the
// live banner and the next page say the same thing.
(function () {
  "use strict";
  var live = document.getElementById("live-banner");
  if (!live || !window.EventSource) return;
  var shown = false, ready = false, shownAt = 0;

  function field(name) { return live.querySelector('[data-f="' + name + '"]'); }

  function show(f) {
    if (shown || !f || !f.error) return;
    shown = true;
    shownAt = Date.now();
    live.className = "banner banner-" + f.error;
    live.setAttribute("data-reason", f.reason || "");
    field("title").textContent = f.title || "You are signed out";
    field("message").textContent = f.message || "";
    var d = f.by;
    if (d || f.admin) {
      field("lead").textContent = d ? (f.replaced_by ? "New sign-in" : "Signed out by") : "Signed out by administrator";
      field("name").textContent = d ? d.device : f.admin;
      field("ip").textContent = d ? " · " + d.ip : "";
      field("device").hidden = false;
    }
    if (f.at) {
      var t = field("at");
      t.setAttribute("datetime", f.at);
      if (window.sessioncapLocalise) window.sessioncapLocalise(t);
      field("when").hidden = false;
    } else {
      field("when").hidden = true;
    }
    field("notme").hidden = !f.not_me;
    var note = document.getElementById("devices-changed");
    if (note) note.hidden = true;
    document.body.classList.add("ended");
    live.hidden = false;
  }

  function check() {
    fetch("/api/me", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.status === 401 ? r.json() : null; })
      .then(show)
      .catch(function () {});
  }

  var es = new EventSource("/api/events");
  es.addEventListener("ready", function () { ready = true; });
  es.addEventListener("ended", function () { es.close(); check(); });
  es.addEventListener("changed", function () {
    var note = document.getElementById("devices-changed");
    if (note && location.pathname === "/devices") note.hidden = false;
  });
  es.onerror = function () {
    // A closed stream (401 on reconnect) means the session is gone; a
    // dropped one reconnects by itself and is checked once.
    if (es.readyState === EventSource.CLOSED) check(); else if (!shown) check();
  };
  // Read by the browser test: whether the stream is up, and when the banner
  // appeared (epoch ms), to measure the sign-out latency.
  window.sessioncapLive = {
    isReady: function () { return ready; },
    shownAt: function () { return shownAt; }
  };
})();
