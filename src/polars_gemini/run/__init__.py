"""Requests -> jobs -> result lines -> typed columns: a run's life (submit in rounds, poll, collect, retry;
`lifecycle`), parsing result lines (`results`), decoding answers into the declared dtypes (`decode`) and joining them
back to the input rows (`assemble`), and what a run reports: status, cost, sink report (`reports`)."""
