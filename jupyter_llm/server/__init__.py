"""The Jupyter server extension: native ``llm/api``, OpenAI-compatible ``llm/v1`` and Pantry
``llm/call`` routes over one ``ModelHost``. Import ``jupyter_llm.server.app`` for the app."""
