"""The public operations: `batch`, `submit` (`functions`), `estimate`, `input_tokens` (`estimating`), the checks of
their options (`options`), and the stateless `df.gemini` / `lf.gemini` namespaces over them (`namespace`)."""
