"""The public operations: `batch` and `submit` (`functions`), `estimate` and `input_tokens` (`estimating`), `resume`
and the opening of a checkpointed run (`resume`), the checks of their options (`options`), and the stateless
`df.gemini` / `lf.gemini` namespaces over them (`namespace`)."""
