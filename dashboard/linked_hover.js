// Linked hover: hovering cell (i, j) of one matrix draws row i and column j on every matrix of the same group.
// Figures join a group through layout.meta = {link: GROUP, columns: true|false, cell: positions per cell}
// (dashboard/plots.py, panel). The overlay is plain DOM over each chart: nothing goes back to the server.
export default function ({ data }) {
  const group = data.group;
  const CLASS = "lens-link";
  const linked = () =>
    [...document.querySelectorAll(".js-plotly-plot")].filter(
      (gd) => gd._fullLayout && gd._fullLayout.meta && gd._fullLayout.meta.link === group,
    );
  const clear = () => document.querySelectorAll(`.${CLASS}`).forEach((el) => el.remove());
  const bar = (gd, left, top, width, height) => {
    const host = gd.querySelector(".svg-container");
    if (!host) return;
    const el = document.createElement("div");
    el.className = CLASS;
    Object.assign(el.style, {
      position: "absolute", left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px`,
      outline: "2px solid #ff9f1c", background: "rgba(255, 159, 28, 0.12)", pointerEvents: "none", zIndex: 5,
    });
    host.appendChild(el);
  };
  const span = (axis, value, half) => {
    const a = axis._offset + axis.l2p(value - half);
    const b = axis._offset + axis.l2p(value + half);
    return [Math.min(a, b), Math.abs(b - a)];
  };
  const show = (i, j) => {
    clear();
    for (const gd of linked()) {
      const fl = gd._fullLayout;
      const xa = fl.xaxis, ya = fl.yaxis, meta = fl.meta;
      const half = (meta.cell || 1) / 2;
      const n = ya.range ? Math.max(...ya.range) : 0;
      if (i <= n) {
        const [top, height] = span(ya, i, half);
        bar(gd, xa._offset, top, xa._length, height);
      }
      const m = xa.range ? Math.max(...xa.range) : 0;
      if (meta.columns && j !== null && j <= m) {
        const [left, width] = span(xa, j, half);
        bar(gd, left, ya._offset, width, ya._length);
      }
    }
  };
  const attach = () => {
    for (const gd of linked()) {
      if (gd.dataset.lensLinked || typeof gd.on !== "function") continue;
      gd.dataset.lensLinked = "1";
      gd.on("plotly_hover", (ev) => {
        const p = ev.points && ev.points[0];
        if (!p) return;
        show(Number(p.y), gd._fullLayout.meta.columns ? Number(p.x) : null);
      });
      gd.on("plotly_unhover", clear);
    }
  };
  attach();
  const timer = setInterval(attach, 500); // charts are redrawn on every rerun: attach to the new ones
  return () => {
    clearInterval(timer);
    clear();
  };
}
