"""gMLP Lens dashboard: ``streamlit run dashboard/app.py``. Components shared by the pages in ``pages/``."""
