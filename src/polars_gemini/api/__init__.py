"""The public operations: `batch`, `submit`, `estimate` and `input_tokens` (`functions`), `resume` and the opening
of a checkpointed run (`resume`), the checks of their options (`options`), and the stateless
`df.gemini` / `lf.gemini` namespaces over them (`namespace`)."""
