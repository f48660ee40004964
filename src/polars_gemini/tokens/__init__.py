"""Counting tokens offline (`tokenizer`): the estimator fitted on real Gemini counts, used to estimate costs, to size
streamed requests and, in the emulator, to bill the way the service does. Imports only `core`."""
