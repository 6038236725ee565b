"""The HTTP API: one FastAPI app serving the dashboard, the cost views and the OpenAI endpoint."""
