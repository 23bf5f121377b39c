"""Locust's own HttpUser with no classification: the baseline bench_load compares against."""

from locust import HttpUser, constant, task


class PlainUser(HttpUser):
    wait_time = constant(0)

    @task
    def call(self) -> None:
        self.client.get("/", name="root")
