"""Run state on disk: atomic Parquet/JSON files and the job record (`files`), the lock between processes and threads
(`lock`), the jobs-and-results store a run works on, in memory or in a directory (`store`), and the read-only report
of a checkpointed run (`status`)."""
