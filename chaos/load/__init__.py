"""Load: the Locust subprocess, its locustfile, and outcome classification.

Kept free of heavy imports: the locustfile imports chaos.load.classify, .connections and
.records inside a gevent-patched Locust process.
"""
