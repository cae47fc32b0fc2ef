"""The prompts of the suite.

Five single-request workloads mirror the categories of the reference study (Chinese QA,
English QA, code generation, logical reasoning, long-context summary). A batch of size B is
the workload's own prompt followed by the first B - 1 of eight fixed batch prompts, so every
batch size of a workload is a superset of the smaller ones and the prompt token counts are
stable, recorded and compared.

The texts were written for this project. A run's set of workloads (:class:`WorkloadSet`) is these
five plus what the ``pytest_npuperf_workloads`` hooks add or replace (docs/hooks.md); a prompt a
hook gave is part of the workload identity by its text (:meth:`WorkloadSet.texts_hash`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Sequence, Tuple

_LONG_CONTEXT = " ".join(
    [
        "The harbour town of Vellmar grew around a single deep-water quay built in 1847.",
        "For its first forty years the quay handled timber and salted fish, and the town's",
        "population stayed below three thousand. In 1889 a rail spur reached the harbour and",
        "the character of the place changed within a decade: grain from the inland farms now",
        "left by ship, two warehouses and a flour mill were built along the waterfront, and",
        "the population doubled. The mill burned down in 1903 and was rebuilt in brick, with",
        "a steam engine that the town council bought second-hand from a closed textile works.",
        "During the First World War the harbour was requisitioned for naval supply, the grain",
        "trade collapsed, and many families left for the cities. After 1920 the council tried",
        "to attract a ferry service to the islands, which finally began in 1926 with two small",
        "steamers. Tourism followed slowly; by 1938 there were four guest houses and a summer",
        "market. The second war closed the ferry, and the rail spur was damaged in 1944. It was",
        "repaired in 1947, exactly a century after the quay was built, but the grain never came",
        "back: lorries now took it to the larger port of Osterby. From the 1950s Vellmar lived",
        "on the ferry, a boatyard that built wooden fishing boats until 1971, and visitors. The",
        "old brick mill stood empty for twenty years, then became a museum of the harbour in",
        "1992, with the steam engine restored by volunteers. Today the town has about five",
        "thousand inhabitants, the ferry runs every hour in summer, and the rail spur carries",
        "a heritage train on Sundays. Local historians point out that every period of growth",
        "began with a change in transport: the quay, the railway, the ferry, and finally the",
        "road bridge to the islands, opened in 2009, which reduced the ferry to a summer service",
        "and brought day visitors by car. The council now debates whether to turn the last",
        "warehouse into flats or into a covered market, and whether the heritage train can pay",
        "for its own upkeep.",
    ]
)


@dataclass(frozen=True)
class Prompt:
    """One user message; the chat template is applied by the model's tokenizer."""

    prompt_id: str
    text: str
    # From a hook: replace the built-in workload of this id (without it, an id taken is an error).
    replace: bool = field(default=False, compare=False)


WORKLOADS: Dict[str, Prompt] = {
    p.prompt_id: p
    for p in (
        Prompt("zh_qa", "请用简洁的语言解释什么是机器学习，并举一个日常生活中的例子。"),
        Prompt("en_qa", "What causes the seasons on Earth? Answer in three or four sentences."),
        Prompt(
            "code_gen",
            "Write a Python function that returns the n-th Fibonacci number using iteration, "
            "with a docstring and two example calls.",
        ),
        Prompt(
            "reasoning",
            "A train leaves at 9:40 and arrives at 13:05, stopping twice for 10 minutes each. "
            "How long was it actually moving? Explain each step.",
        ),
        Prompt("long_summary", "Summarise the following text in five sentences.\n\n" + _LONG_CONTEXT),
    )
}

BATCH_PROMPTS: Tuple[Prompt, ...] = (
    Prompt("b1_translate", "Translate into French: 'The meeting has been moved to Thursday morning.'"),
    Prompt("b2_zh_poem", "写一首关于秋天的四行短诗。"),
    Prompt("b3_sql", "Write an SQL query that lists the ten customers with the highest total order value."),
    Prompt("b4_explain", "Explain the difference between a process and a thread to a new programmer."),
    Prompt("b5_math", "If 3x + 7 = 25, what is x? Show the steps."),
    Prompt("b6_email", "Draft a short, polite email asking a colleague to review a pull request."),
    Prompt("b7_zh_advice", "给刚开始学习编程的人三条建议。"),
    Prompt("b8_list", "List five uses of a paperclip other than holding paper."),
)

MAX_BATCH = len(BATCH_PROMPTS) + 1


# A workload id becomes part of test ids and baseline keys ('fp16-bs1-<id>').
WORKLOAD_ID = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class WorkloadSet:
    """The workloads of a run: the suite's own, with those hooks added or replaced."""

    workloads: Mapping[str, Prompt]
    from_hooks: FrozenSet[str] = frozenset()  # ids whose text a hook gave (added or replaced)

    def names(self) -> List[str]:
        return list(self.workloads)

    def added(self) -> List[str]:
        """Ids a hook added (not replacements of built-in ones): every preset runs them."""
        return [name for name in self.workloads if name not in WORKLOADS]

    def prompts(self) -> List[Prompt]:
        """Every prompt a batch can hold: the workloads, then the batch prompts."""
        return [*self.workloads.values(), *BATCH_PROMPTS]

    def batch(self, workload: str, batch_size: int) -> List[Prompt]:
        """The prompts of one batch: the workload's prompt, then the fixed batch prompts."""
        if workload not in self.workloads:
            raise ValueError(f"unknown workload {workload!r}; known workloads: {', '.join(self.workloads)}")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
        return [self.workloads[workload], *BATCH_PROMPTS[: batch_size - 1]]

    def texts_hash(self, prompts: Sequence[Prompt]) -> str:
        """A short hash of the texts that hooks gave among ``prompts`` ('' where there are none, so
        that the suite's own workloads keep the identity their baselines were recorded with)."""
        given = [[p.prompt_id, p.text] for p in prompts if p.prompt_id in self.from_hooks]
        if not given:
            return ""
        return hashlib.sha256(json.dumps(given, ensure_ascii=False).encode()).hexdigest()[:16]


BUILT_IN = WorkloadSet(dict(WORKLOADS))


def batch_prompts(workload: str, batch_size: int) -> List[Prompt]:
    """The prompts of one batch of the suite's own workloads."""
    return BUILT_IN.batch(workload, batch_size)


class WorkloadError(ValueError):
    """A workload a hook gave that cannot be used; the message names the plugin and the fix."""


def with_hook_workloads(answers: Sequence[Tuple[str, Any]], base: WorkloadSet = BUILT_IN) -> WorkloadSet:
    """``base`` with the prompts of each (plugin name, answer) of the workloads hook: None, or a
    list or tuple of :class:`Prompt`. Raises WorkloadError on the first bad one."""
    workloads, given = dict(base.workloads), set(base.from_hooks)
    owner: Dict[str, str] = {}  # id -> the plugin that gave it
    batch_ids = {p.prompt_id for p in BATCH_PROMPTS}
    for plugin, answer in answers:
        if answer is None:
            continue
        if not isinstance(answer, (list, tuple)):
            raise WorkloadError(f"plugin {plugin!r} returned {type(answer).__name__}; return a list of "
                                "pytest_npuperf.Prompt(prompt_id, text), or None")
        for index, prompt in enumerate(answer):
            where = f"plugin {plugin!r}, item {index}"
            if not isinstance(prompt, Prompt):
                raise WorkloadError(f"{where} is {type(prompt).__name__}; return pytest_npuperf.Prompt(prompt_id, text)")
            pid, text = prompt.prompt_id, prompt.text
            if not isinstance(pid, str) or not WORKLOAD_ID.fullmatch(pid):
                raise WorkloadError(f"{where}: prompt_id {pid!r} must be a non-empty str of letters, digits and "
                                    "underscores (it becomes part of test ids and baseline keys)")
            if not isinstance(text, str) or not text.strip():
                raise WorkloadError(f"{where}: workload {pid!r} has no text; give the prompt's text as a non-empty str")
            if pid in batch_ids:
                raise WorkloadError(f"{where}: {pid!r} is one of the fixed batch prompts, which fill the rows after "
                                    "the first; choose another id")
            if pid in owner:
                raise WorkloadError(f"{where}: workload {pid!r} was already given by plugin {owner[pid]!r}; "
                                    "give each id once")
            if prompt.replace and pid not in base.workloads:
                raise WorkloadError(f"{where}: replace=True, but there is no workload {pid!r} to replace (known: "
                                    f"{', '.join(base.workloads)}); drop replace=True to add it")
            if not prompt.replace and pid in workloads:
                raise WorkloadError(f"{where}: workload {pid!r} exists already; pass replace=True to replace it, or "
                                    "choose another id")
            workloads[pid] = Prompt(pid, text)
            owner[pid] = plugin
            given.add(pid)
    return WorkloadSet(workloads, frozenset(given))
