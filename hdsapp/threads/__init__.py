"""Case threads: messages, attachments, tasks, read state and break-the-glass."""
