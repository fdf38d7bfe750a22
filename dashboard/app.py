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

from dashboard import context, registry, style  # noqa: E402

st.set_page_config(page_title="gMLP Lens", page_icon=":material/lens_blur:", layout="wide")
style.apply()
# Under `streamlit run dashboard/app.py -- --root DIR` the script's own arguments follow its path.
context.setup(sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else [])

sections: dict[str, list[st.Page]] = {}
for page in registry.PAGES:
    sections.setdefault(page.section, []).append(
        st.Page(page.file, title=page.title, icon=page.icon, default=page.default)
    )
st.navigation(sections).run()
