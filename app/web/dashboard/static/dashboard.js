// Progressive enhancement for the dashboard: every page works without this file.
(function () {
  "use strict";
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  // Ask before destructive or wide actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Live counts (every 5 s).
  if (document.querySelector("[data-count]")) {
    setInterval(function () {
      getJSON("/dashboard/api/counts").then(function (c) {
        document.querySelectorAll("[data-count]").forEach(function (el) {
          var key = el.getAttribute("data-count");
          el.textContent = key === "total" ? c.total : c.by_status[key];
        });
        document.querySelectorAll("[data-conn-count]").forEach(function (el) {
          var parts = el.getAttribute("data-conn-count").split("|");
          var row = c.by_connection[parts[0]];
          if (row) { el.textContent = row[parts[1]]; }
        });
      }).catch(function () {});
    }, 5000);
  }

  // A bulk retry's progress bar.
  var bulk = document.getElementById("bulk");
  if (bulk && bulk.getAttribute("data-status") === "running") {
    var bar = document.getElementById("bulk-progress");
    var text = document.getElementById("bulk-text");
    var timer = setInterval(function () {
      getJSON("/dashboard/api/bulk/" + encodeURIComponent(bulk.getAttribute("data-bulk-id"))).then(function (p) {
        bar.max = p.total || 1;
        bar.value = p.total ? p.done : (p.status === "done" ? 1 : 0);
        bar.textContent = p.percent + "%";
        text.textContent = p.status + ": " + p.done + " / " + p.total + " · " + p.retried + " retried, " +
          p.unchanged + " unchanged, " + p.errors + " refused";
        bulk.setAttribute("data-status", p.status);
        if (p.status !== "running") { clearInterval(timer); }
      }).catch(function () {});
    }, 500);
  }

  // A delivery on its way: follow its status, reload when it changes.
  var delivery = document.getElementById("delivery");
  if (delivery && delivery.getAttribute("data-live") === "1") {
    var id = delivery.getAttribute("data-delivery-id");
    var shown = delivery.getAttribute("data-status");
    setInterval(function () {
      getJSON("/dashboard/api/deliveries/" + encodeURIComponent(id)).then(function (d) {
        if (d.status !== shown) { window.location.replace("/dashboard/deliveries/" + encodeURIComponent(id)); }
      }).catch(function () {});
    }, 1000);
  }
})();
