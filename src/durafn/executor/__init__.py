"""The pure orchestration executor: history and new messages in; new events, actions, status out."""
