// The apply page's script (docs/apply-pages.md): shows a conditional question only while its
// precondition holds (chains too), and checks a file's size before it is uploaded. Without it
// every question is shown with its condition in words and the server drops what does not apply.
(function () {
  "use strict";
  var form = document.getElementById("apply");
  if (!form) { return; }
  var messages = JSON.parse(form.getAttribute("data-messages") || "{}");
  var wraps = Array.prototype.slice.call(form.querySelectorAll(".q"));
  var byName = {};
  wraps.forEach(function (w) {
    var input = w.querySelector("[name]");
    if (input) { byName[input.name.replace(/\[\]$/, "")] = w; }
  });

  function answers(wrap) {
    if (!wrap || wrap.hidden) { return []; }
    return Array.prototype.slice.call(wrap.querySelectorAll("[name]")).filter(function (el) {
      if (el.type === "radio" || el.type === "checkbox") { return el.checked; }
      return el.value !== "";
    }).map(function (el) { return el.value; });
  }

  function update() {
    // Parents come before their children (the ATS's order), so one pass settles a chain.
    wraps.forEach(function (w) {
      var pre = w.getAttribute("data-pre");
      if (!pre) { return; }
      var wanted = (w.getAttribute("data-pre-values") || "").split(" ").filter(Boolean);
      var given = answers(byName[pre]);
      var shown = given.length > 0 && (wanted.length === 0 || given.some(function (v) { return wanted.indexOf(v) >= 0; }));
      w.hidden = !shown;
      var cond = w.querySelector(".cond");
      if (cond) { cond.hidden = true; }
      Array.prototype.slice.call(w.querySelectorAll("input, select, textarea")).forEach(function (el) {
        el.disabled = !shown;
        var single = !(el.type === "checkbox");
        if (w.getAttribute("data-required") && single) { el.required = shown; }
      });
    });
  }

  function checkFile(event) {
    var el = event.target;
    var max = parseInt(el.getAttribute("data-max-bytes") || "0", 10);
    var accept = (el.getAttribute("accept") || "").split(",").map(function (s) { return s.trim().toLowerCase(); }).filter(Boolean);
    el.setCustomValidity("");
    if (!el.files || !el.files.length) { return; }
    var file = el.files[0];
    if (max && file.size > max) {
      el.setCustomValidity((messages.file_size || "").replace("{n}", (max >= 1000000 ? Math.round(max / 100000) / 10 + " MB" : Math.max(1, Math.floor(max / 1000)) + " KB")));
    } else if (accept.length) {
      var name = file.name.toLowerCase();
      var ok = accept.some(function (a) {
        return a.charAt(0) === "." ? name.slice(-a.length) === a : a === (file.type || "").toLowerCase();
      });
      if (!ok) { el.setCustomValidity(messages.file_type || ""); }
    }
    el.reportValidity();
  }

  form.addEventListener("change", function (event) {
    if (event.target.type === "file") { checkFile(event); }
    update();
  });
  form.addEventListener("input", update);
  update();
  var summary = document.getElementById("summary");
  if (summary) { summary.focus(); }
})();
