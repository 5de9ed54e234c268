"""Control: remote commands from the API to the poller (issue 5)."""
