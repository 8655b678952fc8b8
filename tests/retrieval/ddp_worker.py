"""Run by tests/retrieval/test_distributed.py under ``torchrun --nproc_per_node=2``: one build,
each rank writing what it returned to ``OUT/rank<r>.json`` (rank 0 also writes the artifact)."""

import json
import os
import sys
from pathlib import Path

from recsys.pipeline import build
from tests.retrieval.test_distributed import options, synthetic_data

out = Path(sys.argv[1])
summary = build(synthetic_data(), out / "artifact", opts=options())
(out / f"rank{os.environ['RANK']}.json").write_text(json.dumps({k: summary.get(k) for k in
                                                                 ("rank", "world_size", "processes", "weights_sha256")}))
