"""Mail: compose, the outbox, and the SMTP sender."""
