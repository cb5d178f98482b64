#!/bin/sh
# firebreak-agent hook: take this action's targets out of a load balancer (weight 0) over its HTTP
# API on prepare/drain/evacuate, and put them back (weight 100) on cancel. Adapt LB_API and the
# request body to your load balancer; the token comes from a file, never from this script.
set -eu
LB_API=${LB_API:-http://lb.internal:8080/api/v1/backends}
TOKEN_FILE=${TOKEN_FILE:-/etc/firebreak-agent/lb-token}
weight=0
[ "$FIREBREAK_ACTION" = cancel ] && weight=100
if [ "$FIREBREAK_DRY_RUN" = true ]; then
  echo "dry run: would set weight $weight for $FIREBREAK_TARGETS"
  exit 0
fi
IFS=,
for target in $FIREBREAK_TARGETS; do
  curl --fail --silent --show-error --max-time 10 -X PATCH \
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: $FIREBREAK_SIGNAL_ID.$target" \
    -d "{\"weight\": $weight, \"reason\": \"firebreak $FIREBREAK_ACTION $FIREBREAK_SIGNAL_ID\"}" \
    "$LB_API/$target"
done
