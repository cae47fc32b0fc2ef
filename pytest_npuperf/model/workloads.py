"""The prompts of the suite.

Five single-request workloads mirror the categories of the reference study (Chinese QA,
English QA, code generation, logical reasoning, long-context summary). A batch of size B is
the workload's own prompt followed by the first B - 1 of eight fixed batch prompts, so every
batch size of a workload is a superset of the smaller ones and the prompt token counts are
stable, recorded and compared.

The texts were written for this project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

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


def batch_prompts(workload: str, batch_size: int) -> List[Prompt]:
    """The prompts of one batch: the workload's prompt, then the fixed batch prompts."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; known workloads: {', '.join(WORKLOADS)}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
    return [WORKLOADS[workload], *BATCH_PROMPTS[: batch_size - 1]]
