"""Locust users for ``benchmarks/locust_load.py`` (run by it; see there).

- :class:`Shopper`: ``GET /recommend`` for a known user (8 in 10 requests) and ``POST /events``
  of a view or a purchase (2 in 10), back to back.
- :class:`Admin`: one of them, ``POST /admin/reload`` of the served artifact every
  ``$RECSYS_LOAD_RELOAD_S`` seconds, so that recommendations are served across swaps.

The known users and items come from the JSON file named by ``$RECSYS_LOAD_IDS``; the admin token
from ``$RECSYS_ADMIN_TOKEN``.
"""

import json
import os
import random

from locust import FastHttpUser, constant, task

IDS = json.loads(open(os.environ["RECSYS_LOAD_IDS"]).read())
TOKEN = os.environ.get("RECSYS_ADMIN_TOKEN", "")
EVENTS = ("view", "view", "view", "purchase")


class Shopper(FastHttpUser):
    wait_time = constant(0)

    @task(8)
    def recommend(self):
        self.client.get(f"/recommend?user={random.choice(IDS['users'])}&k=10", name="GET /recommend")

    @task(2)
    def post_event(self):
        event = {"user_id": random.choice(IDS["users"]), "item_id": random.choice(IDS["items"]),
                 "event": random.choice(EVENTS)}
        self.client.post("/events", json={"events": [event]}, name="POST /events")


class Admin(FastHttpUser):
    fixed_count = 1
    wait_time = constant(float(os.environ.get("RECSYS_LOAD_RELOAD_S", "10")))

    @task
    def reload(self):
        self.client.post("/admin/reload", json={}, headers={"Authorization": f"Bearer {TOKEN}"},
                         name="POST /admin/reload")
