"""PromptForge domain: event-sourced aggregates, their events and invariants.

Pure Python: no HTTP, SQL, Qdrant or clock access here. Every event carries the acting
principal (`actor`) and the request/correlation id (`request_id`); every event of a
tenant-owned aggregate also carries `org_id`, so audit can be derived from the stream alone.
"""
