"""throttle.KeyTurns: attempts sharing a key take turns; others do not wait; nothing is kept."""

from __future__ import annotations

import asyncio

from todo_api.throttle import KeyTurns


def test_attempts_on_a_shared_key_take_turns_and_others_go_on() -> None:
    async def scenario() -> tuple[list[str], bool, int]:
        turns, order = KeyTurns(), []
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with turns.turn(["ua:x", "addr:1"]):
                order.append("holder in")
                first_in.set()
                await release.wait()
                order.append("holder out")

        async def same_key() -> None:
            await first_in.wait()
            async with turns.turn(["addr:1", "user:y"]):  # shares addr:1
                order.append("same key in")

        held = asyncio.create_task(holder())
        waiting = asyncio.create_task(same_key())
        await first_in.wait()
        async with turns.turn(["ua:z", "addr:2"]):  # nothing shared: not kept waiting
            other_went_on = "holder out" not in order
        await asyncio.sleep(0.01)
        assert "same key in" not in order  # still waiting for the holder
        release.set()
        await asyncio.gather(held, waiting)
        return order, other_went_on, len(turns._locks)

    order, other_went_on, kept = asyncio.run(scenario())
    assert order == ["holder in", "holder out", "same key in"]
    assert other_went_on
    assert kept == 0  # no lock outlives its last user: the map stays bounded
