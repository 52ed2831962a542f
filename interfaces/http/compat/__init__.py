"""Compatibility APIs: other products' public HTTP APIs served over PromptForge's commands and reads.

Each adapter translates requests and answers only: every write goes through the application
commands and every read through the read models or application reads, so permissions, protected
labels, tenancy, rate limits, audit and the change feed apply exactly as on `/v1` (adr/0015).

- `langfuse`: Langfuse's public prompt API (`/api/public/v2/prompts`), for applications calling
  `langfuse.get_prompt(...)` unchanged.
"""
