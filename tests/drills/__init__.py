"""Reliability drills (issue 7): hostile input, rolling update, pod loss, database restart, secrets."""
