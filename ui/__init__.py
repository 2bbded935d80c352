"""The reviewer console (Streamlit)."""
