"""gMLP Lens: see what gMLP learns instead of attention.

streamlit run dashboard/app.py                      # checkpoints/ of this repository
streamlit run dashboard/app.py -- --root DIR        # or GMLP_LENS_ROOT=DIR
open http://localhost:8501/?lecture=1                 # lecture mode from step 1 (&step=N for step N)
GMLP_LENS_WARMUP=0 streamlit run dashboard/app.py     # no start-up warm-up (dashboard/warmup.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repository
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from dashboard import context, lecture_bar, loaders, registry, runlog, style, warmup  # noqa: E402

run = runlog.start()  # GMLP_LENS_RUN_LOG=FILE: one line per run (load tests)
loaders.torch_threads()  # this run's thread (Streamlit runs each on a thread of its own)

st.set_page_config(
    page_title="gMLP Lens",
    page_icon=":material/lens_blur:",
    layout="wide",
    initial_sidebar_state=lecture_bar.sidebar_state(),
)
style.apply()
lecturing = lecture_bar.begin()  # before the sidebar's model picker: a lecture step picks models
# Under `streamlit run dashboard/app.py -- --root DIR` the script's own arguments follow its path.
lens = context.setup(sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else [], technical=not lecturing)
warmup.progress(warmup.status(lens))

pages = {p.key: st.Page(p.file, title=p.title, icon=p.icon, default=p.default) for p in registry.PAGES}
sections: dict[str, list[st.Page]] = {}
for page in registry.PAGES:
    sections.setdefault(page.section, []).append(pages[page.key])
current = st.navigation(sections)
lecture_bar.bar(lens, pages, current)
try:
    current.run()
finally:  # once the first page is drawn (even one that stopped early), start the default views' work
    if warmup.enabled():
        warmup.start(lens)
    runlog.finish(run, current.url_path or "overview")
