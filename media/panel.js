// Memory panel charts, drawn as plain SVG (no libraries, no remote resources; CSP allows only this script).
(function () {
  const vscode = acquireVsCodeApi();
  const NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const MB = 1024 * 1024;
  const fmtMb = (b) => (b / MB).toFixed(2) + ' MB';
  const HEADS = [4, 2, 1];
  const expertName = (e) => 'E' + e + (HEADS[e] ? ' (' + HEADS[e] + ' KV)' : '');

  function el(parent, tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const k in attrs) n.setAttribute(k, String(attrs[k]));
    if (text !== undefined) n.textContent = text;
    parent.appendChild(n);
    return n;
  }
  /** Charts are laid out in CSS pixels at the width they get (viewBox = size), so text keeps its 11 px however narrow
   *  the panel is; returns that width. */
  function reset(svg, height) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const w = Math.max(240, Math.min(760, svg.clientWidth || svg.parentNode.clientWidth || 760));
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + height);
    svg.setAttribute('height', String(height));
    return w;
  }
  const CHAR_PX = 6.5; // average width of an 11 px character
  function empty(svg, msg) {
    reset(svg, 30);
    el(svg, 'text', { x: 4, y: 20, class: 'empty' }, msg);
  }

  /** Horizontal bars; rows = [{label, value, parts?: number[]}], parts drawn stacked by expert; a dashed marker at
   *  `budget` labelled `markLabel` (default "budget"). */
  function hbars(svg, rows, max, fmt, budget, markLabel) {
    if (!rows.length) return empty(svg, 'nothing cached yet');
    const rowH = 22;
    const w = reset(svg, rows.length * rowH + 26);
    const left = Math.round(Math.min(190, w * 0.38)), width = w - left - 64;
    const maxChars = Math.floor((left - 6) / CHAR_PX);
    const scale = max > 0 ? width / max : 0;
    rows.forEach((r, i) => {
      const y = i * rowH + 4;
      el(svg, 'text', { x: 0, y: y + 13 }, r.label.length > maxChars ? '…' + r.label.slice(-(maxChars - 1)) : r.label);
      if (r.parts) {
        let x = left;
        const total = r.parts.reduce((a, b) => a + b, 0) || 1;
        r.parts.forEach((p, e) => {
          const w = (p / total) * r.value * scale;
          el(svg, 'rect', { x, y, width: Math.max(0, w), height: rowH - 6, class: 'e' + Math.min(e, 3) });
          x += w;
        });
      } else {
        el(svg, 'rect', { x: left, y, width: Math.max(0, r.value * scale), height: rowH - 6, class: 'bar' });
      }
      el(svg, 'text', { x: left + r.value * scale + 6, y: y + 13 }, fmt(r.value));
    });
    const axisY = rows.length * rowH + 4;
    el(svg, 'line', { x1: left, y1: axisY, x2: left + width, y2: axisY, class: 'axis' });
    if (budget) {
      const bx = left + budget * scale;
      el(svg, 'line', { x1: bx, y1: 0, x2: bx, y2: axisY, class: 'budget' });
      el(svg, 'text', { x: Math.min(bx + 4, w - 44), y: axisY + 16 }, markLabel || 'budget');
    }
  }

  /** One 100% stacked bar per row of shares (per layer). */
  function stacked(svg, rows) {
    if (!rows.length) return empty(svg, 'no routing data yet');
    const rowH = 20, left = 60;
    const n = (rows[0] || []).length;
    const w = reset(svg, rows.length * rowH + 30 + (n * 110 > 760 ? 16 : 0));
    const width = w - left - 8;
    const legendStep = Math.max(70, Math.min(120, width / Math.max(1, n)));
    rows.forEach((shares, l) => {
      const y = l * rowH + 4;
      el(svg, 'text', { x: 0, y: y + 12 }, 'layer ' + l);
      let x = left;
      shares.forEach((s, e) => {
        el(svg, 'rect', { x, y, width: Math.max(0, s * width), height: rowH - 5, class: 'e' + Math.min(e, 3) });
        x += s * width;
      });
    });
    const ly = rows.length * rowH + 20;
    (rows[0] || []).forEach((_, e) => {
      el(svg, 'rect', { x: left + e * legendStep, y: ly - 10, width: 10, height: 10, class: 'e' + Math.min(e, 3) });
      el(svg, 'text', { x: left + e * legendStep + 14, y: ly }, legendStep < 110 ? 'E' + e : expertName(e));
    });
  }

  function histogram(svg, bucketsMs, counts) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (!total) return empty(svg, 'no requests yet');
    const h = 120, top = Math.max(...counts);
    const w = reset(svg, h + 40);
    const barW = Math.max(18, Math.min(70, (w - 12 * counts.length) / counts.length));
    // Short labels when the bars are narrow: "≤1.6s" instead of "≤ 1600 ms".
    const ms = (v) => (barW >= 60 ? v + ' ms' : v >= 1000 ? v / 1000 + 's' : String(v));
    counts.forEach((c, i) => {
      const bh = (c / top) * h;
      const x = i * (barW + 12);
      el(svg, 'rect', { x, y: h - bh + 10, width: barW, height: bh, class: 'bar' });
      el(svg, 'text', { x: x + 4, y: h - bh + 6 }, String(c));
      const label = bucketsMs[i] === null ? '>' + ms(bucketsMs[i - 1]) : '≤' + ms(bucketsMs[i]);
      el(svg, 'text', { x, y: h + 26 }, label);
    });
  }

  // Issue 19's age cascade: where the cached tokens sit (full-precision band, then quantised tiers by age).
  function tiers(c) {
    $('tiersSection').hidden = !c;
    if (!c) return;
    $('tiersNote').textContent = 'Policy ' + c.spec + ': the ' + c.sinks + ' first tokens and the ' + c.band +
      ' tokens before the cursor keep full K/V (with the request\'s own tokens: "full"); older tokens are stored in the ' +
      'tiers below, oldest in the last. Bars: bytes allocated; labels: tokens per layer.';
    const rows = c.tiers.map((t) => ({ label: t.name + ' · ' + t.tokens + ' tok', value: t.bytes }));
    hbars($('tiers'), rows, Math.max(1, ...rows.map((t) => t.value)), fmtMb);
  }

  // Issue 15's RSS cap: the engine process's resident memory against the cap, and the restarts it caused. The words
  // come from the extension (src/shared/panelView.ts rssCapView).
  function rssCap(v) {
    $('rssSection').hidden = !v;
    if (!v) return;
    $('rssNote').textContent = v.lines.join(' ');
    if (v.rssBytes === undefined) return empty($('rss'), 'resident memory not known yet');
    const cap = v.capBytes;
    hbars($('rss'), [{ label: 'engine process (RSS)', value: v.rssBytes }], Math.max(cap || 0, v.rssBytes), fmtMb, cap, 'cap');
  }

  function render(m) {
    const r = m.report;
    const q = m.requests;
    if (!r) {
      $('summary').textContent = 'engine ' + m.state;
      ['usage', 'docs', 'experts', 'layers'].forEach((id) => empty($(id), 'engine ' + m.state));
    } else {
      $('summary').textContent = fmtMb(r.usedBytes) + ' of ' + fmtMb(r.budgetBytes) + ' · ' + r.device.toUpperCase() +
        (m.model ? '' : ' · model ' + r.modelName);
      $('requests').textContent = q.total + ' completion requests from the editor, ' + q.served + ' answered with a suggestion (' +
        q.cacheHits + ' of them from the typing-along cache, without the model); the others were superseded by newer typing, ' +
        'skipped or came back empty (mixSGA: Why No Suggestion? explains the last one).';
      hbars($('usage'), [{ label: 'all documents', value: r.usedBytes, parts: r.expertShares }], Math.max(r.budgetBytes, r.usedBytes), fmtMb, r.budgetBytes);
      const docs = r.docs.slice().sort((a, b) => b.bytes - a.bytes).slice(0, 20).map((d) => ({
        label: decodeURIComponent(d.docId.split('/').pop() || d.docId) + ' · ' + d.tokens + ' tok', value: d.bytes, parts: d.expertTokens,
      }));
      hbars($('docs'), docs, Math.max(1, ...docs.map((d) => d.value)), fmtMb);
      const experts = r.expertShares.map((s, e) => ({ label: expertName(e), value: s }));
      hbars($('experts'), experts, 1, (v) => (v * 100).toFixed(1) + '%');
      stacked($('layers'), r.perLayerShares);
      tiers(r.cascade);
    }
    $('model').textContent = m.model ? 'Model ' + m.model.label + (m.model.reason ? ' — ' + m.model.reason : '') : '';
    rssCap(m.rssCap);
    histogram($('latency'), m.latency.bucketsMs, m.latency.counts);
  }

  let last;
  window.addEventListener('message', (e) => { if (e.data && e.data.type === 'update') render((last = e.data)); });
  window.addEventListener('resize', () => { if (last) render(last); });
  $('clear').addEventListener('click', () => vscode.postMessage({ type: 'clear' }));
  $('budget').addEventListener('click', () => vscode.postMessage({ type: 'budget' }));
  vscode.postMessage({ type: 'ready' });
})();
