"""The send loop in parts, one job each (`campaign.sender.send_campaign` composes them):

- `policy`: the knobs (`SendPolicy`), the progress event and the client protocol;
- `pacing`: the rate limiter (token bucket on an injected monotonic clock);
- `budget`: the recipients a run may still send (`max_per_day` of a job);
- `window`: the send-window gate (China time, overnight windows too);
- `interrupt`: the one way a stop is requested and noticed (stop event, Ctrl-C, SIGTERM);
- `loop`: the loop that composes them under the at-most-once bookkeeping.

Each part returns its decision; the loop does not read state left in another's attribute.
"""
