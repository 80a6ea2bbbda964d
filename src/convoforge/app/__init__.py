"""The doors: the `convoforge` CLI and the Streamlit app."""
