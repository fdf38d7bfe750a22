"""The one list of the dashboard's pages: the app's navigation, the tests and the page benchmark all read it.

Adding a page is a new file ``pages/<key>.py`` (its helpers, if any, in ``dashboard/<key>_view.py``) and
one ``Page`` line here. No streamlit import, so tests and benchmarks read it as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One screen of the dashboard: ``pages/<key>.py``, shown as ``title`` in ``section`` of the navigation."""

    key: str
    title: str
    icon: str
    section: str
    default: bool = False  # the page at the app's root URL

    @property
    def file(self) -> str:
        """The page script relative to ``dashboard/app.py`` (what ``st.Page`` and AppTest's ``switch_page`` take)."""
        return f"../pages/{self.key}.py"

    @property
    def url_path(self) -> str:
        """The URL path ``st.navigation`` derives from the file name ("" for the default page)."""
        return "" if self.default else self.key


PAGES: tuple[Page, ...] = (
    Page("overview", "Overview", ":material/table_view:", "Explore", default=True),
    Page("inference", "Live inference", ":material/bolt:", "Explore"),
    Page("spatial", "Spatial weights", ":material/grid_on:", "Explore"),
    Page("w_vs_attention", "W versus attention", ":material/compare:", "Explore"),
    Page("interventions", "Interventions", ":material/content_cut:", "Explore"),
    Page("attributions", "Attributions", ":material/highlight:", "Explore"),
    Page("attention_matters", "When attention matters", ":material/join_inner:", "Results"),
    Page("scaling", "Scaling", ":material/trending_down:", "Results"),
    Page("training", "Training", ":material/show_chart:", "Results"),
    Page("guide", "Guide", ":material/school:", "Learn"),
)


def page(key: str) -> Page:
    """The registered page ``key`` (KeyError naming the known keys otherwise)."""
    for p in PAGES:
        if p.key == key:
            return p
    raise KeyError(f"no page {key!r}; the pages are {[p.key for p in PAGES]}")
