"""The `polars-gemini` command (`main`: emulator, demo, status) and the demo it runs (`demo`)."""
