"""The t4r-studio Streamlit app (`streamlit run app/Home.py`). Pages call t4r_core; no model logic here."""
