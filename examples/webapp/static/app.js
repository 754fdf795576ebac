// Live sign-out banner: the server streams this user's session events; when
// this device's session ends, ask /api/me why (the tombstone is the truth,
// the event only a prompt) and show the answer without a reload.
(function () {
  "use strict";
  var live = document.getElementById("live-banner");
  if (!live || !window.EventSource) return;
  var shown = false, ready = false, shownAt = 0;

  function field(name) { return live.querySelector('[data-f="' + name + '"]'); }

  function deviceName(ua) {
    if (!ua) return "Unknown device";
    var browsers = [["Edg/", "Edge"], ["OPR/", "Opera"], ["Firefox/", "Firefox"], ["HeadlessChrome/", "Headless Chrome"],
      ["Chrome/", "Chrome"], ["Safari/", "Safari"], ["curl/", "curl"], ["Go-http-client", "Go client"]];
    var systems = [["Android", "Android"], ["iPhone", "iPhone"], ["iPad", "iPad"], ["Windows", "Windows"],
      ["Mac OS X", "macOS"], ["CrOS", "ChromeOS"], ["Linux", "Linux"]];
    var b = "Browser", i;
    for (i = 0; i < browsers.length; i++) if (ua.indexOf(browsers[i][0]) >= 0) { b = browsers[i][1]; break; }
    for (i = 0; i < systems.length; i++) if (ua.indexOf(systems[i][0]) >= 0) return b + " on " + systems[i][1];
    return b;
  }

  function utc(iso) { return iso ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : ""; }

  function show(f) {
    if (shown || !f || !f.error) return;
    shown = true;
    shownAt = Date.now();
    var titles = { evicted: "Your account signed in on another device", revoked: "This device was signed out",
      expired: "Your session expired" };
    field("title").textContent = titles[f.error] || "You are signed out";
    field("message").textContent = f.error === "evicted"
      ? "This device was signed out because the account allows only a limited number of devices at once."
      : f.message;
    var d = f.replaced_by || f.by;
    if (d) {
      field("lead").textContent = f.error === "evicted" ? "New sign-in" : "Signed out by";
      field("at").textContent = utc(f.at);
      field("at").setAttribute("datetime", f.at || "");
      field("name").textContent = deviceName(d.user_agent);
      field("ip").textContent = d.ip;
      field("sid").textContent = (d.session_id || "").slice(0, 8);
      field("ua").textContent = d.user_agent;
      field("device").hidden = false;
    }
    field("notme").hidden = f.error !== "evicted";
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
