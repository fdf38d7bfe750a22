"""gMLP Lens: see what gMLP learns instead of attention.

streamlit run dashboard/app.py                      # checkpoints/ of this repository
streamlit run dashboard/app.py -- --root DIR        # or GMLP_LENS_ROOT=DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repository
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from dashboard import context, style  # noqa: E402

st.set_page_config(page_title="gMLP Lens", page_icon=":material/lens_blur:", layout="wide")
style.apply()
# Under `streamlit run dashboard/app.py -- --root DIR` the script's own arguments follow its path.
context.setup(sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else [])

PAGES = {
    "Explore": [
        st.Page("../pages/overview.py", title="Overview", icon=":material/table_view:", default=True),
        st.Page("../pages/inference.py", title="Live inference", icon=":material/bolt:"),
        st.Page("../pages/spatial.py", title="Spatial weights", icon=":material/grid_on:"),
        st.Page("../pages/w_vs_attention.py", title="W versus attention", icon=":material/compare:"),
        st.Page("../pages/attributions.py", title="Attributions", icon=":material/highlight:"),
    ],
    "Results": [
        st.Page("../pages/scaling.py", title="Scaling", icon=":material/trending_down:"),
        st.Page("../pages/training.py", title="Training", icon=":material/show_chart:"),
    ],
    "Learn": [st.Page("../pages/guide.py", title="Guide", icon=":material/school:")],
}

st.navigation(PAGES).run()
