"""Operations plumbing shared by every process: heartbeats, request ids and JSON logs, the
resilient Redis cache, error tracking. Imports nothing from the domain apps (it sits below accounts)."""
