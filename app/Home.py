"""t4r-studio: `streamlit run app/Home.py`.

The entry file only declares the navigation and the shared sidebar; each page is one short file
under app/views/ that calls t4r_core (no model logic in the app). The folder is deliberately not
called `pages/`: Streamlit treats a `pages/` folder next to the entry script as a legacy (v1)
multipage app until `st.navigation` has run once, so a first visit to a deep link such as /data
would skip this file (no sections, no sidebar, no wide layout) for the whole server."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.components import state, ui  # noqa: E402

st.set_page_config(page_title="t4r-studio", page_icon=":material/timeline:", layout="wide")


def page(name: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(f"views/{name}.py", title=ui.PAGES[name], icon=icon, url_path=name, default=default)


nav = st.navigation({
    "Start": [page("home", ":material/home:", default=True)],
    "Build": [page("data", ":material/table_view:"), page("model", ":material/tune:"),
              page("train", ":material/model_training:")],
    "Inspect": [page("evaluate", ":material/leaderboard:"), page("attention", ":material/grid_on:"),
                page("recommend", ":material/recommend:"), page("embeddings", ":material/scatter_plot:")],
    "Learn": [page("masking", ":material/school:")],
})
nav.run()
ui.sidebar(state.AppState.load())  # after the page, so it shows what the page just changed
