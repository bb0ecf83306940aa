"""Webhooks: when a task ends, its end is posted to the task's callback URL.

- `target`: what a callback URL must look like to be accepted (create, `keys create`);
- `outbox`: the delivery rows written with the task's end, their lease and their attempts;
- `sender`: the loop on every node that claims due deliveries, signs and posts them, and
  schedules the next try.

See docs/webhooks.md.
"""
