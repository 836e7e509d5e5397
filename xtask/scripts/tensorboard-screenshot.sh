#!/usr/bin/env bash
# Screenshot of TensorBoard's time-series dashboard over a folder of runs, taken with headless
# Chromium (the README's "Watching a run" picture, issue 29).
#
#   xtask/scripts/tensorboard-screenshot.sh LOGDIR OUT.png [TAG_FILTER] [WIDTHxHEIGHT]
#
# LOGDIR: a folder of runs, e.g. runs/mechanism (every seed-N folder under it is one TensorBoard
# run). TAG_FILTER: a regular expression over tag names (default `knn`). Needs Chromium
# (`apt-get install -y chromium` on Debian) and a Python with tensorboard: `$FEATDROP_PYTHON`, else
# featdrop's venv (~/.cache/featdrop/torch-2.11.0/venv), where `cargo xtask test` installs it.
set -euo pipefail

logdir=${1:?usage: $0 LOGDIR OUT.png [TAG_FILTER] [WIDTHxHEIGHT]}
out=${2:?usage: $0 LOGDIR OUT.png [TAG_FILTER] [WIDTHxHEIGHT]}
filter=${3:-knn}
size=${4:-1600x1000}
python=${FEATDROP_PYTHON:-$HOME/.cache/featdrop/torch-2.11.0/venv/bin/python}
port=${TENSORBOARD_PORT:-6123}
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)

[ -d "$logdir" ] || { echo "error: LOGDIR $logdir is not a folder" >&2; exit 2; }
[ -n "$chromium" ] || { echo "error: no chromium on PATH (Debian: apt-get install -y chromium)" >&2; exit 2; }
"$python" -c 'import tensorboard' 2>/dev/null ||
  { echo "error: $python has no tensorboard (cargo xtask test installs it; or set FEATDROP_PYTHON)" >&2; exit 2; }

log=$(mktemp)
"$python" -m tensorboard.main --logdir "$logdir" --port "$port" --host 127.0.0.1 \
  --reload_interval 0 >"$log" 2>&1 &
tb=$!
trap 'kill "$tb" 2>/dev/null; wait "$tb" 2>/dev/null; rm -f "$log"' EXIT

# Served once the HTTP port answers; give up after 60 s with TensorBoard's own log.
for _ in $(seq 120); do
  if "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/data/runs', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$tb" 2>/dev/null || { cat "$log" >&2; echo "error: tensorboard exited" >&2; exit 1; }
  sleep 0.5
done

# The port answers before every run is read: wait until the scalars of every run folder holding
# an event file are served (at most 120 s), or the charts of a large grid come out empty.
runs=$(find "$logdir" -name 'events.out.tfevents.*' -printf '%h\n' | sort -u | wc -l)
for _ in $(seq 240); do
  served=$("$python" -c "import json, urllib.request; print(len(json.load(urllib.request.urlopen('http://127.0.0.1:$port/data/plugin/scalars/tags', timeout=2))))" 2>/dev/null || echo 0)
  [ "$served" -ge "$runs" ] && break
  sleep 0.5
done

# forceSVG: headless Chromium draws no WebGL lines. tagFilter fills the dashboard's tag filter.
url="http://127.0.0.1:$port/?forceSVG=true&tagFilter=$filter#timeseries"
# The dashboard draws its charts after it has fetched the data: give it time before the picture.
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=30000 \
  --window-size="${size/x/,}" --screenshot="$out" "$url" 2>/dev/null
echo "wrote $out ($url)"
