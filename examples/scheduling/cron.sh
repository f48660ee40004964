#!/usr/bin/env bash
# One cron tick of a daily polars-gemini run: submit today's run once, then pick it up on later ticks until it is
# done. No tick waits for Google (a batch can take up to 24 h): each one takes seconds and exits.
#
# crontab (every 15 minutes; the key in the environment or a file only cron's user can read):
#
#   */15 * * * *  . /etc/polars-gemini.env; INPUT=/data/reviews/today.parquet RUNS=/mnt/etl/runs OUT_DIR=/data/labelled /opt/etl/cron.sh >> /var/log/polars-gemini/reviews.log 2>&1
#
# Per day D (UTC unless DAY is given) it keeps:
#   $RUNS/$NAME-D/               the checkpoint: all the run's state (put it on durable storage)
#   $RUNS/$NAME-D.done.json      the final report: later ticks of day D do nothing and send nothing
#   $RUNS/$NAME-D.halted.json    written when more rows failed than MAX_FAILED allows: later ticks stop and say so
#                                (delete it to try the day again)
#   $OUT_DIR/$NAME-D.parquet     the result file
#
# Exit status: 0 submitted, still pending or done; 1 the service failed (the next tick tries again); 2 bad input
# or usage, 3 over MAX_COST (nothing was sent; fix and the next tick submits); 4 too many failed rows (halted).
# Linux: uses util-linux `flock` so that overlapping ticks never work on the checkpoint at once.
set -euo pipefail

: "${INPUT:?set INPUT to the input file (Parquet, CSV, NDJSON or IPC)}"
NAME=${NAME:-reviews}
DAY=${DAY:-$(date -u +%F)}
RUNS=${RUNS:-runs}
OUT_DIR=${OUT_DIR:-out}
TEMPLATE=${TEMPLATE:-"Classify the sentiment of this review as positive, negative or neutral: {review}"}
MODEL=${MODEL:-gemini-2.5-flash}
MAX_COST=${MAX_COST:-20}        # USD: submitting is refused (exit 3) when the estimate could exceed it
MAX_FAILED=${MAX_FAILED:-0.01}  # failed rows allowed: a count (10) or a fraction of the rows (0.01)
STUCK_AFTER=${STUCK_AFTER:-30}  # hours: a job still pending or running then is cancelled and sent again by FALLBACK
FALLBACK=${FALLBACK:-batch}     # batch: a new batch job; flex: synchronous calls at the Flex tier (minutes)
WEBHOOK=${WEBHOOK:-}            # optional: where `polars-gemini webhook serve` listens (it then finishes the run)
PG=${POLARS_GEMINI:-polars-gemini}

CHECKPOINT="$RUNS/$NAME-$DAY"
OUTPUT="$OUT_DIR/$NAME-$DAY.parquet"
DONE="$CHECKPOINT.done.json"
HALTED="$CHECKPOINT.halted.json"
REPORT="$CHECKPOINT.report.json"

log() { printf '%s %s %s: %s\n' "$(date -u +%FT%TZ)" "$NAME" "$DAY" "$*" >&2; }

mkdir -p "$RUNS" "$OUT_DIR"
exec 9>"$RUNS/.$NAME.lock"
if ! flock -n 9; then
    log "the previous tick is still at work; skipping this one"
    exit 0
fi

if [[ -e "$DONE" ]]; then
    log "done already ($DONE); nothing to do"
    exit 0
fi
if [[ -e "$HALTED" ]]; then
    log "halted: too many failed rows ($HALTED, output $OUTPUT); delete $HALTED to try again"
    exit 4
fi

code=0
if [[ ! -e "$CHECKPOINT/manifest.json" ]]; then  # no run for today yet (the manifest is written before any job)
    log "submitting $INPUT to $CHECKPOINT"
    args=(--checkpoint "$CHECKPOINT" --max-cost "$MAX_COST" --stuck-after "$STUCK_AFTER" --fallback "$FALLBACK")
    if [[ -n "$WEBHOOK" ]]; then
        args+=(--webhook "$WEBHOOK" -o "$OUTPUT")
    fi
    "$PG" submit "$INPUT" -t "$TEMPLATE" -m "$MODEL" "${args[@]}" --json > "$REPORT" || code=$?
    case $code in
        0) log "submitted: $(tr -s ' \n' ' ' < "$REPORT")" ;;
        3) log "refused: the estimate could exceed MAX_COST=$MAX_COST USD; nothing was sent" ;;
        *) log "submit failed with exit $code; see the error above" ;;
    esac
    exit "$code"
fi

"$PG" resume "$CHECKPOINT" -o "$OUTPUT" --no-wait --max-failed "$MAX_FAILED" --json > "$REPORT" || code=$?
case $code in
    0)  mv "$REPORT" "$DONE"
        log "done: wrote $OUTPUT; $(tr -s ' \n' ' ' < "$DONE")" ;;
    5)  log "still pending; the next tick looks again" ;;
    4)  mv "$REPORT" "$HALTED"
        log "too many failed rows (more than $MAX_FAILED): $OUTPUT is written, see its response_error column" ;;
    1)  log "the service failed (an API error retries did not fix); the next tick tries again" ;;
    *)  log "resume failed with exit $code; see the error above" ;;
esac
if (( code == 5 )); then
    exit 0
fi
exit "$code"
