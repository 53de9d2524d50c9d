"""The reply benchmark's customers, in their own process so they do not slow the bot down.

Run by bench/replies.py: links each chat with its token, then sends N messages, each after the
previous reply arrived and a typing pause (random, up to --think seconds; 0: none). Prints
"done <seconds>".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from tests.telegram.emulator import Customer

QUESTIONS = ["wann kommt der techniker", "when is the technician coming", "hallo",
             "teknisyen ne zaman gelecek", "когда придет мастер", "متى يجي الفني",
             "was muss ich vorbereiten", "danke", "how do i recognise the technician"]


async def run(emulator: str, tokens: list[str], first_chat: int, messages: int,
              poll: float, think: float) -> float:
    people = [Customer(emulator, chat_id=first_chat + i, poll=poll) for i in range(len(tokens))]
    for person, token in zip(people, tokens, strict=True):
        await person.say(f"/start {token}")
    for person in people:
        await person.reply(wait=120)
    print("linked", flush=True)
    sys.stdin.readline()  # the parent clears its figures, then says go

    async def talk(person: Customer) -> None:
        pause = random.Random(person.chat_id)  # typing pauses
        for i in range(messages):
            if think:  # a person reads the answer and types the next message
                await asyncio.sleep(pause.uniform(think / 3, think))
            await person.say(QUESTIONS[(i + person.chat_id) % len(QUESTIONS)])
            await person.reply(wait=120)

    started = time.perf_counter()
    await asyncio.gather(*(talk(p) for p in people))
    seconds = time.perf_counter() - started
    for person in people:
        await person.close()
    return seconds


def main() -> None:
    """Parse the arguments (tokens as JSON on the command line) and talk."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emulator", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--first-chat", type=int, required=True)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--think", type=float, default=0.0)
    args = parser.parse_args()
    seconds = asyncio.run(run(args.emulator, json.loads(args.tokens), args.first_chat,
                              args.messages, args.poll, args.think))
    print(f"done {seconds}", flush=True)


if __name__ == "__main__":
    main()
