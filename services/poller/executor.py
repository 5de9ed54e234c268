"""Commands on one printer, each command id run at most once (architecture §5, guarantee 3).

Theory of operation
-------------------
A command takes the connection's turn (never in the middle of a poll cycle), uses the held
link or opens a short lease of its own, and answers with one ``Answer``:

* an id answered before (in the journal) gets the same answer, the printer untouched;
* the same id asked again while it runs waits for the same run (one task per id);
* past its deadline before it could start: ``expired``, nothing sent;
* marked ``sending`` in the journal by a previous life of the poller (killed between
  sending and answering): only read back, never sent again;
* otherwise ``actions.execute_action``, which marks ``sending`` durably right before the
  code goes out.

Every answer is journaled before it is returned, then the watcher is woken so the next
status shows the effect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.commands import Action, Answer
from gateway.config import LimitsSection
from gateway.errors import PrinterIOError, PrinterProtocolError
from services.poller.actions import execute_action, verify_only
from services.poller.connection import PrinterConnection
from services.poller.journal import Journal

logger = logging.getLogger(__name__)


class CommandExecutor:
    """Runs one printer's commands; ``answer`` is the command channel's handler."""

    def __init__(
        self,
        connection: PrinterConnection,
        journal: Journal,
        limits: LimitsSection,
        *,
        verify_within_s: float,
        after_each: Callable[[], None],
    ) -> None:
        self.connection = connection
        self.journal = journal
        self.limits = limits
        self.verify_within_s = verify_within_s
        self._after_each = after_each
        self._running: dict[str, asyncio.Task[Answer]] = {}

    async def answer(self, command_id: str, action: Action, deadline: float | None) -> Answer:
        """Run a command once per id (see the module's comment); `deadline` is monotonic."""
        remembered = self.journal.outcome(command_id)
        if remembered is not None:
            return remembered
        task = self._running.get(command_id)
        if task is None:
            task = asyncio.create_task(self._run_once(command_id, action, deadline))
            self._running[command_id] = task
            task.add_done_callback(lambda _: self._running.pop(command_id, None))
        return await asyncio.shield(task)

    async def _run_once(self, command_id: str, action: Action, deadline: float | None) -> Answer:
        async with self.connection.turn:
            if deadline is not None and time.monotonic() >= deadline:
                answer = Answer(
                    command_id,
                    "expired",
                    "deadline passed before the command could start; not sent",
                )
            else:
                answer = await self._on_printer(command_id, action)
        await self.journal.remember(answer)
        logger.info(
            "printer %s: command %s -> %s (%s)",
            self.connection.printer.id,
            command_id,
            answer.outcome,
            answer.detail,
        )
        self._after_each()
        return answer

    async def _on_printer(self, command_id: str, action: Action) -> Answer:
        short_lease = not self.connection.held
        try:
            link = await self.connection.open()
        except (PrinterIOError, PrinterProtocolError) as err:
            return Answer(command_id, "rejected", f"printer not reachable: {err}")
        try:
            if self.journal.was_sending(command_id):
                return await verify_only(link, command_id, action)
            return await execute_action(
                link,
                command_id,
                action,
                self.limits,
                verify_within_s=self.verify_within_s,
                before_sending=lambda: self.journal.mark_sending(command_id),
            )
        except (PrinterIOError, PrinterProtocolError) as err:
            await self.connection.close()
            return Answer(
                command_id, "failed", f"printer connection failed during the command: {err}"
            )
        finally:
            if short_lease:
                await self.connection.close()
