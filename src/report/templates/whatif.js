// The what-if panel of a served run page: each change of a shock posts the scenario to
// /api/simulate and rebuilds the result tables and the DSCR chart from the answer.
//
// Cells are formatted by the rules of src/report/run_page/cells.rs and
// src/report/label.rs (money with thousands separators, rates in percent, DSCR bands),
// and the chart is drawn as src/report/svg.rs draws it, so a what-if page reads like
// the page the server rendered. The form's data-state (idle, busy, done, error) and
// data-ms say where it is, for people and for tests.
(function () {
  'use strict';

  var form = document.getElementById('whatif');
  if (!form) {
    return;
  }
  var status = document.getElementById('whatif-status');
  var runId = form.getAttribute('data-run');
  var FIELDS = ['noi_change', 'revenue_change', 'expense_change', 'vacancy_change', 'rate_change'];
  // As cells.rs: the most rows a table shows.
  var MAX_ROWS = 500;
  var DEBOUNCE_MS = 50;
  var SVG = 'http://www.w3.org/2000/svg';
  var timer = null;
  var inflight = null;

  // --- Formatting, as src/report/label.rs ---

  var ACRONYMS = ['noi', 'dscr', 'ltv', 'irr', 'yoy', 'p05', 'p95', 'id'];
  var KNOWN = {
    property_name: 'property',
    annual_debt_service: 'debt service',
    max_annual_debt_service: 'max debt service',
    change_pct: 'change %',
    yoy_change_pct: 'YoY change %'
  };
  var MONEY = ['noi', 'revenue', 'expenses', 'expense', 'service', 'loan', 'principal', 'price', 'value',
    'headroom', 'amount', 'income', 'rent', 'balance', 'cost', 'costs', 'proceeds'];

  function column(key) {
    if (Object.prototype.hasOwnProperty.call(KNOWN, key)) {
      return KNOWN[key];
    }
    return key.split('_').filter(function (w) { return w !== ''; }).map(function (w) {
      return ACRONYMS.indexOf(w) >= 0 ? w.toUpperCase() : w;
    }).join(' ');
  }

  function kind(key) {
    key = key.toLowerCase();
    var parts = key.split('_');
    var has = function (w) { return parts.indexOf(w) >= 0; };
    if (key.indexOf('dscr') >= 0 || /_count$/.test(key) || has('months') || has('years') || has('rank')) {
      return 'plain';
    }
    if (/_change$/.test(key) || has('rate') || has('yield') || has('ltv') || has('irr') || has('pct') ||
        has('growth') || has('occupancy')) {
      return 'percent';
    }
    return MONEY.some(has) ? 'money' : 'plain';
  }

  function trimTo(x, decimals) {
    var text = x.toFixed(decimals);
    if (text.indexOf('.') >= 0) {
      text = text.replace(/0+$/, '').replace(/\.$/, '');
    }
    return text === '-0' ? '0' : text;
  }

  function thousands(x, decimals) {
    var text = Math.abs(x).toFixed(decimals);
    var dot = text.indexOf('.');
    var whole = dot >= 0 ? text.slice(0, dot) : text;
    var fraction = dot >= 0 ? text.slice(dot + 1) : '';
    var grouped = '';
    for (var i = 0; i < whole.length; i++) {
      if (i > 0 && (whole.length - i) % 3 === 0) {
        grouped += ',';
      }
      grouped += whole[i];
    }
    var sign = x < 0 && /[1-9]/.test(text) ? '-' : '';
    return sign + grouped + (fraction ? '.' + fraction : '');
  }

  function number(key, x) {
    if (!isFinite(x)) {
      return isNaN(x) ? 'NaN' : (x > 0 ? 'inf' : '-inf');
    }
    switch (kind(key)) {
      case 'money': return thousands(x, 2);
      case 'percent': return trimTo(x * 100, 2) + '%';
      default: return trimTo(x, 4);
    }
  }

  function signed(x, decimals) {
    var text = trimTo(Math.abs(x), decimals);
    var sign = /^[0.]*$/.test(text) ? '±' : (x < 0 ? '−' : '+');
    return sign + text;
  }

  var PARAM_NAMES = {
    noi_change: 'NOI', revenue_change: 'revenue', expense_change: 'expenses',
    vacancy_change: 'vacancy', rate_change: 'rate'
  };

  function param(key, value) {
    switch (key) {
      case 'noi_change':
      case 'revenue_change':
      case 'expense_change':
        return PARAM_NAMES[key] + ' ' + signed(value * 100, 2) + '%';
      case 'vacancy_change': return 'vacancy ' + signed(value * 100, 2) + ' pts';
      case 'rate_change': return 'rate ' + signed(value * 10000, 1) + ' bp';
      default: return column(key) + ' ' + trimTo(value, 4);
    }
  }

  function scenario(id) {
    var parts = id.split(/[;,]/);
    var words = [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      var value = eq >= 0 ? Number(parts[i].slice(eq + 1).trim()) : NaN;
      if (eq < 0 || parts[i].slice(eq + 1).trim() === '' || isNaN(value)) {
        return id;
      }
      words.push(param(parts[i].slice(0, eq).trim(), value));
    }
    return words.join(', ');
  }

  // Controls and invisible characters shown as escapes, as the host shows guest text;
  // line breaks and tabs stay in `multiline` text.
  function visible(text, multiline) {
    return text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g, function (c) {
      var code = c.charCodeAt(0);
      if (multiline && (c === '\n' || c === '\t')) { return c; }
      if (c === '\n') { return '\\n'; }
      if (c === '\r') { return '\\r'; }
      if (c === '\t') { return '\\t'; }
      if (code < 0x80) { return '\\x' + ('0' + code.toString(16)).slice(-2); }
      return '\\u{' + ('000' + code.toString(16)).slice(-4) + '}';
    });
  }

  function isDscr(key) {
    return key.toLowerCase().indexOf('dscr') >= 0;
  }

  function band(dscr) {
    return dscr >= 1.25 ? 'green' : (dscr >= 1.0 ? 'yellow' : 'red');
  }

  var COLOURS = { green: '#2e7d32', yellow: '#f9a825', red: '#c62828' };

  function cellText(key, value) {
    if (typeof value === 'number') {
      return number(key, value);
    }
    if (typeof value === 'string' && (key === 'scenario' || /_scenario$/.test(key))) {
      return scenario(value);
    }
    if (value === null || value === undefined) {
      return '';
    }
    if (typeof value === 'string') {
      return value;
    }
    if (typeof value === 'boolean') {
      return String(value);
    }
    return JSON.stringify(value);
  }

  function cell(dataColumn, key, value) {
    var td = document.createElement('td');
    td.setAttribute('data-column', dataColumn);
    td.textContent = visible(cellText(key, value));
    if (typeof value === 'number') {
      td.className = 'num';
      if (isDscr(key) && isFinite(value)) {
        td.setAttribute('data-band', band(value));
      }
    }
    return td;
  }

  // --- Tables ---

  function rebuildTable(table, value) {
    var shape = table.getAttribute('data-shape');
    var columns = Array.prototype.map.call(table.querySelectorAll('thead th[data-column]'), function (th) {
      return th.getAttribute('data-column');
    });
    var body = document.createElement('tbody');
    var add = function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (td) { tr.appendChild(td); });
      body.appendChild(tr);
    };
    if (shape === 'pairs' && value && typeof value === 'object' && !Array.isArray(value)) {
      Object.keys(value).slice(0, MAX_ROWS).forEach(function (key) {
        add([cell('key', 'key', column(key)), cell('value', key, value[key])]);
      });
    } else if (shape === 'rows' && Array.isArray(value)) {
      value.slice(0, MAX_ROWS).forEach(function (row) {
        row = row && typeof row === 'object' ? row : {};
        add(columns.map(function (key) { return cell(key, key, row[key]); }));
      });
    } else {
      return;
    }
    var old = table.querySelector('tbody');
    if (old) {
      table.replaceChild(body, old);
    } else {
      table.appendChild(body);
    }
  }

  function byResultKey(selector, key) {
    var all = document.querySelectorAll(selector + '[data-result-key]');
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute('data-result-key') === key) {
        return all[i];
      }
    }
    return null;
  }

  // --- The chart, as src/report/svg.rs `bar_chart` draws it ---

  function svgElement(name, attributes, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (a) { el.setAttribute(a, String(attributes[a])); });
    if (text !== undefined) {
      el.textContent = text;
    }
    return el;
  }

  function barChart(title, bars, lines) {
    var WIDTH = 760, LEFT = 230, RIGHT = 40, ROW = 22;
    var height = 30 + bars.length * ROW + 20;
    var max = 1e-9;
    bars.forEach(function (b) { max = Math.max(max, b.value); });
    lines.forEach(function (l) { max = Math.max(max, l); });
    var scale = (WIDTH - LEFT - RIGHT) / max;
    var svg = svgElement('svg', {
      xmlns: SVG, width: WIDTH, height: height, viewBox: '0 0 ' + WIDTH + ' ' + height,
      'font-family': 'sans-serif', 'font-size': 12, role: 'img'
    });
    svg.appendChild(svgElement('title', {}, title));
    bars.forEach(function (bar, i) {
      var y = 20 + i * ROW;
      var w = Math.max(Math.max(bar.value, 0) * scale, 0.5);
      svg.appendChild(svgElement('text', { x: (LEFT - 6).toFixed(1), y: (y + 14).toFixed(1), 'text-anchor': 'end' }, bar.label));
      svg.appendChild(svgElement('rect', {
        x: LEFT, y: (y + 3).toFixed(1), width: w.toFixed(1), height: (ROW - 6).toFixed(1), fill: bar.colour
      }));
      svg.appendChild(svgElement('text', { x: (LEFT + w + 4).toFixed(1), y: (y + 14).toFixed(1) }, bar.value.toFixed(2)));
    });
    lines.forEach(function (line) {
      var x = (LEFT + line * scale).toFixed(1);
      svg.appendChild(svgElement('line', {
        x1: x, y1: 14, x2: x, y2: (height - 18).toFixed(1), stroke: '#555', 'stroke-dasharray': '4 3'
      }));
      svg.appendChild(svgElement('text', { x: x, y: (height - 4).toFixed(1), 'text-anchor': 'middle' }, String(line)));
    });
    return svg;
  }

  function redrawChart(results) {
    var figure = document.getElementById('dscr-chart');
    if (!figure) {
      return;
    }
    var rows = results[figure.getAttribute('data-result-key')];
    if (!Array.isArray(rows)) {
      return;
    }
    var nameKey = figure.getAttribute('data-name-column');
    var dscrKey = figure.getAttribute('data-dscr-column');
    var bars = [];
    rows.slice(0, MAX_ROWS).forEach(function (row) {
      if (row && typeof row[nameKey] === 'string' && typeof row[dscrKey] === 'number') {
        var v = row[dscrKey];
        bars.push({ label: visible(row[nameKey]), value: v, colour: COLOURS[band(v)] });
      }
    });
    var chart = barChart('DSCR by property', bars, [1.0, 1.25]);
    var old = figure.querySelector('svg');
    if (old) {
      figure.replaceChild(chart, old);
    } else {
      figure.appendChild(chart);
    }
  }

  function applyResults(results) {
    Object.keys(results || {}).forEach(function (key) {
      var table = byResultKey('table', key);
      if (table) {
        rebuildTable(table, results[key]);
        return;
      }
      var pre = byResultKey('pre', key);
      if (pre) {
        pre.textContent = visible(JSON.stringify(results[key], null, 2), true);
      }
    });
    redrawChart(results || {});
  }

  // --- The form ---

  function shocks() {
    var values = {};
    FIELDS.forEach(function (key) {
      var v = parseFloat(document.getElementById('whatif-' + key).value);
      values[key] = isFinite(v) ? v / 100 : 0;
    });
    return values;
  }

  function describe(values) {
    var words = FIELDS.filter(function (key) { return values[key] !== 0; }).map(function (key) {
      return param(key, values[key]);
    });
    return words.length ? words.join(', ') : 'base case';
  }

  function setState(state, text) {
    form.setAttribute('data-state', state);
    if (text !== undefined) {
      status.textContent = text;
    }
  }

  function failure(body, fallback) {
    if (body && typeof body === 'object' && body.message) {
      return (body.kind ? body.kind + ': ' : '') + body.message;
    }
    return fallback;
  }

  function simulate() {
    if (inflight) {
      inflight.abort();
    }
    var controller = new AbortController();
    inflight = controller;
    var values = shocks();
    var scenarioBody = { name: 'what-if' };
    FIELDS.forEach(function (key) { scenarioBody[key] = values[key]; });
    var started = performance.now();
    setState('busy', 'What-if: ' + describe(values) + ' …');
    fetch('/api/simulate', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ run_id: runId, scenarios: [scenarioBody] }),
      signal: controller.signal
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (e) {
          body = null;
        }
        return { ok: response.ok, status: response.status, body: body };
      });
    }).then(function (answer) {
      if (inflight !== controller) {
        return;
      }
      inflight = null;
      var ms = performance.now() - started;
      form.setAttribute('data-ms', String(Math.round(ms)));
      if (!answer.ok) {
        setState('error', 'What-if failed: ' + visible(failure(answer.body, 'the server answered ' + answer.status)));
        return;
      }
      var first = answer.body && answer.body.scenarios && answer.body.scenarios[0];
      if (!first) {
        setState('error', 'What-if failed: the answer holds no scenario');
        return;
      }
      if (first.status !== 'ok') {
        setState('error', 'What-if failed: ' + visible(failure(first.error, 'the script failed')));
        return;
      }
      applyResults(first.results);
      var unread = Array.isArray(first.unread) ? first.unread : [];
      if (unread.length) {
        setState('done', 'What-if: the script does not read ' + unread.map(function (name) { return visible(String(name)); }).join(', ') +
          ': the what-if cannot change its answer · ' + Math.round(ms) + ' ms');
      } else {
        setState('done', 'What-if: ' + describe(values) + ' · ' + Math.round(ms) + ' ms');
      }
    }).catch(function (error) {
      // A newer request aborted this one: the newer one reports.
      if (error && error.name === 'AbortError') {
        return;
      }
      if (inflight === controller) {
        inflight = null;
      }
      setState('error', 'What-if failed: ' + visible(String(error && error.message || error)));
    });
  }

  function schedule() {
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(function () {
      timer = null;
      simulate();
    }, DEBOUNCE_MS);
  }

  FIELDS.forEach(function (key) {
    var box = document.getElementById('whatif-' + key);
    var slider = document.getElementById('whatif-' + key + '-range');
    box.addEventListener('input', function () {
      if (slider && box.value !== '') {
        slider.value = box.value;
      }
      schedule();
    });
    if (slider) {
      slider.addEventListener('input', function () {
        box.value = slider.value;
        schedule();
      });
    }
  });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    schedule();
  });

  document.getElementById('whatif-reset').addEventListener('click', function () {
    FIELDS.forEach(function (key) {
      document.getElementById('whatif-' + key).value = '0';
      var slider = document.getElementById('whatif-' + key + '-range');
      if (slider) {
        slider.value = '0';
      }
    });
    schedule();
  });
})();
