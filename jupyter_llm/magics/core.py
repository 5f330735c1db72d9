"""The ``LLMMagics`` class: one ``llm`` name as a line magic (commands) and a cell magic
(prompts). Every error of jupyter_llm shows as one line, never a traceback."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..errors import JupyterLLMError
from .arguments import cell_arguments
from .render import cell_error
from .session import Session

__all__ = ["LLMMagics"]


@magics_class
class LLMMagics(Magics):
    """``%llm COMMAND`` and ``%%llm [options]``; state lives in :attr:`session`."""

    def __init__(self, shell: Any = None, session: Session | None = None) -> None:
        super().__init__(shell)
        self.session = session or Session()

    @line_cell_magic
    def llm(self, line: str, cell: str | None = None) -> Any:
        """Talk to language models: `%llm help` for the commands, `%%llm?` for cell options."""
        try:
            if cell is None:
                from .line import run_line

                return run_line(self.shell, self.session, line)
            from .cell import run_cell

            return run_cell(self.shell, self.session, line, cell)
        except JupyterLLMError as e:
            raise cell_error(e) from None

    def record_error(self, result: Any) -> None:
        """``post_run_cell`` hook: remember the last failing cell for `%llm fix`."""
        error = getattr(result, "error_in_exec", None)
        if error is None or isinstance(error, JupyterLLMError | UsageError):
            return  # the magic's own one-line errors are not the code to explain
        self.session.last_error = error
        info = getattr(result, "info", None)
        self.session.last_error_cell = getattr(info, "raw_cell", None)


LLMMagics.llm.__doc__ = (LLMMagics.llm.__doc__ or "") + "\n\n" + (cell_arguments.__doc__ or "")
