"""Prints what TensorBoard reads from a run folder's event files, as JSON on stdout:
{"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, width, height], ...]}}.

Run by crates/eval/tests/tensorboard.rs with featdrop's Python, where `cargo xtask test` installs
tensorboard. EventAccumulator is what TensorBoard's own loader uses (with its rules for a step
written again: the later point replaces the earlier ones from that step on).
"""

import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea

acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
acc.Reload()
tags = acc.Tags()
out = {
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "images": {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]},
}
json.dump(out, sys.stdout)
