// kb catalogue index: recount and recolour the ATT&CK matrix under the vendor, platform and
// domain filters, and search techniques by id or name. Plain browser JavaScript, no library.
(function () {
  "use strict";
  var data = window.KB_MATRIX;
  if (!data) { return; }
  var cells = Array.prototype.slice.call(document.querySelectorAll("#matrix .cell[data-id]"));
  var byId = {};
  cells.forEach(function (cell) { (byId[cell.dataset.id] = byId[cell.dataset.id] || []).push(cell); });
  var el = function (id) { return document.getElementById(id); };
  var vendor = el("f-vendor"), platform = el("f-platform"), domain = el("f-domain");
  var colour = el("f-colour"), subs = el("f-subs"), search = el("search"), results = el("results");

  function fill(select, values) {
    values.forEach(function (value) {
      var option = document.createElement("option");
      option.textContent = value;
      select.appendChild(option);
    });
  }

  function heat(count, scale) {
    var level = 0;
    scale.forEach(function (bound) { if (count >= bound) { level += 1; } });
    return level;
  }

  function recount() {
    var v = data.vendors.indexOf(vendor.value), d = data.domains.indexOf(domain.value);
    var p = data.platforms.indexOf(platform.value), byVendors = colour.value === "vendors";
    cells.forEach(function (cell) {
      var scope = data.scope[cell.dataset.id] || [], rules = 0, seen = {};
      scope.forEach(function (index) {
        var rule = data.rules[index];
        if ((v >= 0 && rule[0] !== v) || (d >= 0 && rule[1] !== d) ||
            (p >= 0 && rule[2].indexOf(p) < 0)) { return; }
        rules += 1;
        seen[rule[0]] = true;
      });
      var vendors = Object.keys(seen).length;
      var level = byVendors ? heat(vendors, data.scales.vendors) : heat(rules, data.scales.rules);
      cell.className = cell.className.replace(/\bh\d\b/, "h" + level);
      cell.querySelector(".count").textContent = byVendors ? vendors : rules;
      cell.title = cell.dataset.id + " " + cell.dataset.name + ": " + rules + " rules, " +
        vendors + " vendors";
    });
    document.querySelectorAll("#matrix .tactic").forEach(function (column) {
      var top = column.querySelectorAll(".tech > .cell");
      var covered = Array.prototype.filter.call(top, function (cell) {
        return !cell.classList.contains("h0");
      });
      column.querySelector(".covered .n").textContent = covered.length;
    });
    legend(byVendors);
  }

  function legend(byVendors) {
    var scale = byVendors ? data.scales.vendors : data.scales.rules;
    document.querySelectorAll("#legend .cell[data-bound]").forEach(function (item, index) {
      var low = scale[index], next = scale[index + 1];
      item.textContent = next === undefined ? low + "+" : (next - 1 > low ? low + "–" + (next - 1) : low);
    });
    document.querySelector("#legend .unit").textContent = byVendors ? "vendors" : "rules";
  }

  function matches(query) {
    var q = query.trim().toLowerCase();
    if (!q) { return null; }
    return data.search.filter(function (entry) {
      return entry[0].toLowerCase().indexOf(q) === 0 || entry[1].toLowerCase().indexOf(q) >= 0;
    });
  }

  function find() {
    var found = matches(search.value);
    results.textContent = "";
    results.hidden = found === null;
    var wanted = {};
    (found || []).forEach(function (entry) { wanted[entry[0]] = true; });
    cells.forEach(function (cell) {
      var hit = found !== null && wanted[cell.dataset.id] === true;
      cell.classList.toggle("dim", found !== null && !hit);
      cell.classList.toggle("hit", hit);
      if (hit && cell.classList.contains("sub")) { cell.closest(".tech").classList.add("open"); }
    });
    if (found === null) { return; }
    if (!found.length) {
      var none = document.createElement("li");
      none.className = "none";
      none.textContent = "No technique matches.";
      results.appendChild(none);
    }
    found.slice(0, 60).forEach(function (entry) {
      var item = document.createElement("li"), link = document.createElement("a");
      link.href = "techniques/" + entry[0] + ".html";
      link.textContent = entry[0] + " " + entry[1];
      item.appendChild(link);
      results.appendChild(item);
    });
  }

  fill(platform, data.platforms);
  fill(domain, data.domains);
  [vendor, platform, domain, colour].forEach(function (select) {
    select.addEventListener("change", recount);
  });
  subs.addEventListener("change", function () {
    document.body.classList.toggle("show-subs", subs.checked);
  });
  document.querySelectorAll("#matrix .toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var tech = button.closest(".tech");
      button.setAttribute("aria-expanded", String(tech.classList.toggle("open")));
    });
  });
  search.addEventListener("input", find);
  search.addEventListener("keydown", function (event) {
    var first = results.querySelector("a");
    if (event.key === "Enter" && first) { window.location.href = first.href; }
  });
  if (search.value) { find(); }
}());
