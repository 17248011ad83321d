"""Events out: the transactional outbox, the feed and stream that read it, and delivery to
consumers' webhook endpoints (DESIGN.md decision 12)."""
