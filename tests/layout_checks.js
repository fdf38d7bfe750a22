// Text that collides or is cut off in the page's plotly charts, from the DOM's bounding boxes, and labels of the
// main area's buttons and tabs cut to an ellipsis ("Main co..."), which a projector makes unreadable.
// Returns a list of problems, each a short string naming the chart's title and the two texts, or the label.
() => {
  const TEXT = ".gtitle, .g-xtitle, .g-ytitle, .xtick text, .ytick text, .annotation-text, .legendtext, " +
    ".cbaxis text, .cbtitle text, .g-gtitle text";
  const SLACK = 1.0; // px of overlap tolerated (anti-aliasing)
  const problems = [];
  const box = (el) => el.getBoundingClientRect();
  const hits = (a, b) =>
    Math.min(a.right, b.right) - Math.max(a.left, b.left) > SLACK &&
    Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > SLACK;
  const charts = [...document.querySelectorAll(".js-plotly-plot")].filter((c) => box(c).width > 0);
  const name = (c) => (c.querySelector(".gtitle") || {}).textContent || "(untitled chart)";
  charts.forEach((chart, ci) => {
    const outer = box(chart);
    const texts = [...chart.querySelectorAll(TEXT)]
      .filter((t) => t.textContent.trim() && box(t).width > 0 && getComputedStyle(t).visibility !== "hidden")
      .map((t) => ({ t: t.textContent.trim(), b: box(t) }));
    for (const x of texts) {
      if (x.b.left < outer.left - SLACK || x.b.right > outer.right + SLACK ||
          x.b.top < outer.top - SLACK || x.b.bottom > outer.bottom + SLACK) {
        problems.push(`${name(chart)}: "${x.t}" is cut off by the chart's edge`);
      }
    }
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        if (hits(texts[i].b, texts[j].b)) {
          problems.push(`${name(chart)}: "${texts[i].t}" overlaps "${texts[j].t}"`);
        }
      }
    }
    charts.slice(ci + 1).forEach((other) => {
      if (hits(outer, box(other))) problems.push(`${name(chart)} overlaps the chart ${name(other)}`);
    });
  });
  const controls = document.querySelectorAll(
    '[data-testid="stMain"] button [data-testid="stMarkdownContainer"], [data-testid="stMain"] [role="tab"] p');
  for (const label of controls) {
    if (box(label).width > 0 && label.scrollWidth > label.clientWidth) {
      problems.push(`the label "${label.textContent.trim()}" is cut off (${label.scrollWidth} px in ${label.clientWidth})`);
    }
  }
  return problems;
}
