"""Webhook deliveries: the delivery log, the sender (signatures, SSRF guard) and the dispatcher."""
