"""mixsga.prompt: the golden cases shared with the engine's prompt (test/fixtures/prompt-cases.json, checked on
the TypeScript side by test/unit/prompt.test.ts) are what the Python prompt gives now, and the layouts hold."""
import json

from mixsga import prompt_cases


def test_committed_golden_cases_are_current():
    committed = prompt_cases.OUT.read_text()
    assert committed == prompt_cases.text(), "python -m mixsga.prompt_cases, then check the TypeScript side"


def test_layouts():
    p = prompt_cases.prompter()
    cases = json.loads(prompt_cases.OUT.read_text())["cases"]
    assert len({c["name"] for c in cases}) == len(cases) >= 6
    for c in cases:
        pre, suf = c["prefix_ids"], c["suffix_ids"]
        assert p.decode(pre) == c["prefix"] and p.decode(suf) == c["suffix"]
        assert c["spm"] == [1, p.fim["suffix_id"], *suf, p.fim["prefix_id"], *pre, p.fim["middle_id"]]
    q = prompt_cases.Prompter(p.tok, p.fim, 1, 2, ordering="psm")
    assert q.prompt_ids("a = 1\n", "b\n", 8, 64) == [1, p.fim["prefix_id"], *p.encode_segment("a = 1\n"),
                                                      p.fim["suffix_id"], *p.encode_segment("b\n"), p.fim["middle_id"]]
    assert q.prompt_ids("a = 1\n", "", 8, 64) == [1, *p.encode_segment("a = 1\n")]   # left to right
    long = "x = 1\n" * 200
    ids = q.prompt_ids(long, long, 8, 64)
    assert len(ids) <= 64 - 8 and ids[-1] == p.fim["middle_id"]                     # cut to the room
