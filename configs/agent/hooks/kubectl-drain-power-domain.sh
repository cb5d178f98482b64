#!/bin/sh
# firebreak-agent hook: cordon and drain every Kubernetes node labelled with one of the signal's
# power domains (firebreak.io/power-domain=<domain>), so workloads move before the power goes;
# on cancel, uncordon them. The signal is on stdin; FIREBREAK_* variables carry its fields.
set -eu
label=firebreak.io/power-domain
IFS=,
for domain in $FIREBREAK_DOMAINS; do
  nodes=$(kubectl get nodes -l "$label=$domain" -o name)
  [ -n "$nodes" ] || continue
  for node in $nodes; do
    case "$FIREBREAK_ACTION" in
      drain|evacuate)
        if [ "$FIREBREAK_DRY_RUN" = true ]; then
          echo "dry run: would drain $node ($domain)"
          continue
        fi
        kubectl cordon "$node"
        # On evacuate there is little time: do not wait politely for long.
        grace=120
        [ "$FIREBREAK_ACTION" = evacuate ] && grace=30
        kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data --grace-period="$grace" --timeout=10m
        ;;
      cancel)
        kubectl uncordon "$node"
        ;;
    esac
  done
done
