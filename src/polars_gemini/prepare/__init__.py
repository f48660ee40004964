"""Frame -> prompts -> requests, all local and pure, so that every mistake is caught before anything is sent:
templates rendered as Polars expressions (`template`), output schemas mapped to response schemas and dtypes
(`schema`), the shared request spec, keys and JSONL encoding (`requests`), dedup and the split into job shards
(`plan`, `shards`), and the same in bounded memory for LazyFrames (`stream`). Media parts of a row belong here."""
