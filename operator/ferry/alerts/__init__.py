"""Alerts: which outcomes a finished run has, the message for each, and its delivery by
webhook or e-mail. outcomes.py and message.py are pure; webhook.py and email.py do the I/O."""
