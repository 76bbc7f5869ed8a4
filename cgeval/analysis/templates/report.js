// cgeval report: sortable and filterable tables, and the item browser.
// Everything from the data is written with textContent / createTextNode, never as markup.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tables: click a header to sort (data-v on the cells holds the sort value), selects above filter the rows.

  function sortValue(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) return numeric ? -Infinity : "";
    var v = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (!numeric) return v.toLowerCase();
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }

  function makeSortable(table) {
    var heads = $$("thead th", table);
    heads.forEach(function (th, col) {
      if (th.hasAttribute("data-nosort")) return;
      th.tabIndex = 0;
      th.classList.add("sortable");
      function sort() {
        var numeric = th.getAttribute("data-type") === "num";
        var asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortValue(a, col, numeric), y = sortValue(b, col, numeric);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }

  function makeFilterable(box) {
    var table = document.getElementById(box.getAttribute("data-for"));
    if (!table) return;
    var selects = $$("select[data-key]", box);
    var search = $("input[type=search]", box);
    var count = $(".count", box);
    function apply() {
      var shown = 0, rows = table.tBodies[0].rows;
      var q = search ? search.value.trim().toLowerCase() : "";
      for (var i = 0; i < rows.length; i++) {
        var r = rows[i], ok = true;
        for (var j = 0; j < selects.length && ok; j++) {
          var v = selects[j].value;
          if (v && r.getAttribute("data-" + selects[j].getAttribute("data-key")) !== v) ok = false;
        }
        if (ok && q && r.textContent.toLowerCase().indexOf(q) < 0) ok = false;
        r.hidden = !ok;
        if (ok) shown++;
      }
      if (count) count.textContent = shown + " of " + rows.length + " shown";
    }
    selects.forEach(function (s) { s.addEventListener("change", apply); });
    if (search) search.addEventListener("input", apply);
    apply();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Item browser

  // Positions in an item row (see cgeval/analysis/html_sections.py: browser_data).
  var ID = 0, COMP = 1, SPLIT = 2, OUTCOME = 3, GOLD = 4, PRED = 5, RULE = 6, QUESTION = 7, OPTIONS = 8,
      REPLY = 9, CUT = 10, IMAGE = 11, THUMB = 12, GOLD_LABEL = 13, PRED_LABEL = 14, DETAIL = 15;

  function Browser(root, data) {
    this.root = root;
    this.data = data;
    this.items = data.items;
    this.page = 0;
    this.cell = null; // {gold, pred} from a confusion-matrix cell
    this.haystack = null;
    this.f = {
      comp: $("#f-comp", root), split: $("#f-split", root), outcome: $("#f-outcome", root),
      rule: $("#f-rule", root), q: $("#f-q", root), size: $("#f-size", root)
    };
    this.list = $("#items", root);
    this.status = $("#browser-status", root);
    this.chip = $("#cell-chip", root);
    this.fill();
    this.bind();
    this.update();
  }

  Browser.prototype.fill = function () {
    var d = this.data, f = this.f;
    function add(sel, values) {
      values.forEach(function (v, i) { var o = el("option", null, v); o.value = String(i); sel.appendChild(o); });
    }
    add(f.comp, d.compositions);
    add(f.split, d.splits);
    add(f.rule, d.rules);
  };

  Browser.prototype.bind = function () {
    var self = this, timer = null;
    ["comp", "split", "outcome", "rule", "size"].forEach(function (k) {
      self.f[k].addEventListener("change", function () { self.page = 0; self.update(); });
    });
    this.f.q.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.page = 0; self.update(); }, 150);
    });
    $("#prev", this.root).addEventListener("click", function () { if (self.page > 0) { self.page--; self.render(); } });
    $("#next", this.root).addEventListener("click", function () {
      if ((self.page + 1) * self.size() < self.matches.length) { self.page++; self.render(); }
    });
    $("#cell-clear", this.root).addEventListener("click", function () { self.setCell(null); });
  };

  Browser.prototype.size = function () { return parseInt(this.f.size.value, 10) || 25; };

  Browser.prototype.setCell = function (cell) {
    this.cell = cell;
    this.chip.hidden = !cell;
    if (cell) $("#cell-text", this.root).textContent = "gold \u201c" + cell.gold + "\u201d, predicted \u201c" + cell.pred + "\u201d";
    this.page = 0;
    this.update();
  };

  Browser.prototype.show = function (filters) {
    var f = this.f, d = this.data;
    if ("comp" in filters) f.comp.value = filters.comp === null ? "" : String(d.compositions.indexOf(filters.comp));
    if ("outcome" in filters) f.outcome.value = filters.outcome;
    f.rule.value = "rule" in filters ? String(d.rules.indexOf(filters.rule)) : "";
    f.split.value = "";
    f.q.value = "";
    this.setCell(filters.cell || null);
    this.root.scrollIntoView();
  };

  Browser.prototype.text = function (i) {
    if (!this.haystack) {
      this.haystack = this.items.map(function (it) {
        var parts = [it[ID], it[QUESTION], it[REPLY], it[GOLD_LABEL], it[PRED_LABEL], it[IMAGE]];
        (it[OPTIONS] || []).forEach(function (o) { parts.push(o[1]); });
        return parts.join("\n").toLowerCase();
      });
    }
    return this.haystack[i];
  };

  Browser.prototype.update = function () {
    var f = this.f, items = this.items, out = [];
    var comp = f.comp.value === "" ? -1 : +f.comp.value;
    var split = f.split.value === "" ? -1 : +f.split.value;
    var rule = f.rule.value === "" ? -1 : +f.rule.value;
    var outcome = f.outcome.value;
    var q = f.q.value.trim().toLowerCase();
    var cell = this.cell;
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      if (comp >= 0 && it[COMP] !== comp) continue;
      if (split >= 0 && it[SPLIT] !== split) continue;
      if (rule >= 0 && it[RULE] !== rule) continue;
      if (outcome === "not-right" && it[OUTCOME] === 0) continue;
      if (outcome !== "not-right" && outcome !== "" && it[OUTCOME] !== +outcome) continue;
      if (cell && (it[GOLD_LABEL] !== cell.gold || it[PRED_LABEL] !== cell.pred)) continue;
      if (q && this.text(i).indexOf(q) < 0) continue;
      out.push(i);
    }
    this.matches = out;
    this.render();
  };

  Browser.prototype.render = function () {
    var size = this.size(), start = this.page * size, end = Math.min(this.matches.length, start + size);
    var frag = document.createDocumentFragment();
    for (var k = start; k < end; k++) frag.appendChild(this.card(this.items[this.matches[k]]));
    this.list.textContent = "";
    this.list.appendChild(frag);
    this.status.textContent = this.matches.length === 0 ? "no items match these filters" :
      "items " + (start + 1) + "\u2013" + end + " of " + this.matches.length + " matching (" + this.items.length + " in the run)";
    $("#prev", this.root).disabled = this.page === 0;
    $("#next", this.root).disabled = end >= this.matches.length;
  };

  Browser.prototype.card = function (it) {
    var d = this.data, outcome = d.outcomes[it[OUTCOME]];
    var card = el("article", "item " + outcome);
    card.setAttribute("data-item", it[ID]);
    var fig = el("div", "thumb");
    if (it[THUMB] >= 0) {
      var img = el("img");
      img.src = d.thumbs[it[THUMB]];
      img.alt = "image of " + it[ID];
      img.width = 160;
      fig.appendChild(img);
    } else {
      fig.appendChild(el("span", "nothumb", it[IMAGE] ? "no thumbnail embedded" : "no image"));
    }
    card.appendChild(fig);
    var body = el("div", "body");
    var head = el("div", "head");
    head.appendChild(el("span", "badge " + outcome, outcome));
    head.appendChild(el("span", "iid", it[ID]));
    head.appendChild(el("span", "comp", d.compositions[it[COMP]]));
    head.appendChild(el("span", "split " + d.splits[it[SPLIT]], d.splits[it[SPLIT]]));
    body.appendChild(head);
    body.appendChild(el("p", "question", it[QUESTION] || "(question not recorded)"));
    if (it[OPTIONS]) {
      var ol = el("ul", "options");
      it[OPTIONS].forEach(function (o) {
        var li = el("li");
        li.appendChild(el("b", null, o[0]));
        li.appendChild(document.createTextNode(" " + o[1]));
        if (o[0] === it[GOLD]) { li.classList.add("gold"); li.appendChild(el("span", "tag", "gold")); }
        if (o[0] === it[PRED]) { li.classList.add("picked"); li.appendChild(el("span", "tag", "predicted")); }
        ol.appendChild(li);
      });
      body.appendChild(ol);
    } else {
      body.appendChild(el("p", "meta", "gold " + it[GOLD] + " (" + it[GOLD_LABEL] + ")"));
    }
    var reply = el("div", "reply");
    reply.appendChild(el("span", "label", "reply"));
    reply.appendChild(el("pre", null, it[REPLY] === null ? "(no free-text reply: scored by option likelihood)" : it[REPLY]));
    if (it[CUT] > 0) reply.appendChild(el("span", "meta", "\u2026 " + it[CUT] + " more characters in predictions.jsonl"));
    body.appendChild(reply);
    var parsed = "parsed: " + (it[PRED] === null ? "none (unanswered)" : it[PRED] + " (" + it[PRED_LABEL] + ")") +
      " \u00b7 rule: " + d.rules[it[RULE]] + " \u00b7 gold: " + it[GOLD] + " (" + it[GOLD_LABEL] + ")";
    body.appendChild(el("p", "meta", parsed));
    if (it[DETAIL]) body.appendChild(el("p", "meta", it[DETAIL]));
    if (it[IMAGE]) body.appendChild(el("p", "meta path", it[IMAGE]));
    card.appendChild(body);
    return card;
  };

  // ---------------------------------------------------------------------------------------------------------

  function init() {
    $$("table.sortable").forEach(makeSortable);
    $$(".filters[data-for]").forEach(makeFilterable);
    $$("a[href^='#cm-']").forEach(function (a) {  // a link to a confusion matrix opens it
      a.addEventListener("click", function () {
        var d = document.getElementById(a.getAttribute("href").slice(1));
        if (d) d.open = true;
      });
    });
    var holder = document.getElementById("cgeval-data");
    var browser = null;
    if (holder && $("#browser")) {
      browser = new Browser($("#browser"), JSON.parse(holder.textContent));
      $$("[data-show-comp]").forEach(function (a) {
        a.addEventListener("click", function (e) {
          e.preventDefault();
          browser.show({comp: a.getAttribute("data-show-comp"), outcome: a.getAttribute("data-show-outcome") || ""});
        });
      });
      $$("[data-show-rule]").forEach(function (a) {
        a.addEventListener("click", function (e) {
          e.preventDefault();
          browser.show({comp: null, outcome: "", rule: a.getAttribute("data-show-rule")});
        });
      });
      // a confusion-matrix cell: its row header is the gold label, its column header the predicted one
      $$("table.cm tbody td").forEach(function (td) {
        if (td.classList.contains("num")) return;
        td.addEventListener("click", function () {
          var t = td.closest("table"), row = td.parentNode;
          var gold = row.cells[0].textContent, pred = t.tHead.rows[0].cells[td.cellIndex].textContent;
          browser.show({comp: t.getAttribute("data-comp"), outcome: "", cell: {gold: gold, pred: pred}});
        });
      });
    }
    window.cgevalReport = {browser: browser, readyMs: performance.now()};
    document.documentElement.setAttribute("data-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
