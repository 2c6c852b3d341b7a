"""The agent-loop workload of `runtools-bench agent`, run with OpenAI's `openai-agents` package
against the same local wire-format model server, for a side-by-side comparison.

Each run is one agent with one no-op function tool; the server makes every conversation call the
tool `--tool-steps` times and then answer. Prints one JSON object: wall and CPU seconds, model
calls (steps) made, and the process's resident memory before and at the peak of the workload.

    python openai_agents_bench.py --base-url http://127.0.0.1:PORT/v1 --mode sequential --runs 100
    python openai_agents_bench.py --base-url ... --mode concurrent --runs 1000
"""

import argparse
import asyncio
import json
import resource
import time

from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@function_tool
def noop(step: int) -> str:
    """Does nothing and says so."""
    return "ok"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--mode", choices=["sequential", "concurrent"], required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--max-turns", type=int, default=100)
    args = parser.parse_args()

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=args.base_url, api_key="bench", max_retries=0, timeout=600)
    model = OpenAIChatCompletionsModel(model="gpt-4.1", openai_client=client)
    agent = Agent(name="bench", instructions="You are a benchmark.", tools=[noop], model=model)

    async def one(index: int) -> int:
        result = await Runner.run(agent, f"run {index}", max_turns=args.max_turns)
        assert result.final_output == "done", result.final_output
        return len(result.raw_responses)

    # Warm up (imports, first connection) before measuring.
    await one(-1)
    baseline = rss_bytes()
    peak = baseline
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    if args.mode == "sequential":
        steps = 0
        for index in range(args.runs):
            steps += await one(index)
    else:
        steps = sum(await asyncio.gather(*(one(index) for index in range(args.runs))))
    wall, cpu = time.perf_counter() - wall_before, cpu_seconds() - cpu_before
    stop.set()
    await sampler
    peak = max(peak, rss_bytes())
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "steps": steps, "runs": args.runs,
                      "rss_baseline": baseline, "rss_peak": peak}))


asyncio.run(main())
