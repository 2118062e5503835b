"""Jobs on a distributed queue (QUEUE_URL=redis://...): Celery with a Redis broker.

`serve` keeps each event, robot call and install in the state's inbox (connector/webapp/inbox.py),
then queues a named task carrying only JSON - the tenant, the kind and the inbox id; any number of
`repeat-sales worker` processes run them. Per tenant one sync at a time (tenant_lock.py), every
portal's request budget shared by all workers (budget.py), robots' answers on their own queue that
workers read first, and one schedule for all tenants (scheduler.py). Without QUEUE_URL none of this
loads: `serve` keeps its in-process worker (connector/webapp/worker.py).
"""
