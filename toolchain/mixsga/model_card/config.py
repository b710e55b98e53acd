"""What the card compares: the run names, KV budgets, targets and eval sets; the default date and machine."""

DATE = "2026-11-29"
MACHINE = "one NVIDIA H200 (training, eval_ppl); code evals on a loaded 2-core CPU (PyTorch, 1 thread per run)"
BUDGETS = [0.25, 0.35, 0.5, 0.75, 1.0]
TARGET_PPL_RATIO = 1.03            # mixSGA@50% <= 1.03 x full-KV perplexity
RUNS = {"dense": "dense trunk (from scratch)",
        "mixsga": "mixSGA 3:1:6 (the branch the card is about)",
        "dense-cont": "dense continued: full-KV reference at equal compute",
        "gqa2": "static GQA-2 (every token on the group-2 expert)",
        "abl-lmgrad": "ablation: router + LM gradient (straight-through)",
        "abl-random": "ablation: random router (3:1:6)"}
GROUP_SIZES = [1, 2, 4]            # fallbacks when mixsga/ckpt/config.json is missing
TARGET_RATIOS = [0.3, 0.1, 0.6]
SET_NAMES = {"single": "HumanEval single-line infilling", "multi": "HumanEval multi-line infilling",
             "light": "HumanEval random-span-light", "random": "HumanEval random-span",
             "humaneval": "HumanEval left-to-right", "ts": "MultiPL-E HumanEval TypeScript",
             "js": "MultiPL-E HumanEval JavaScript"}
SET_FULL = {"single": 1033, "multi": 5815, "light": 164, "random": 1640, "humaneval": 164, "ts": 159, "js": 161}
