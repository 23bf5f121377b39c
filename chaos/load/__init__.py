"""Load: the Locust subprocess, its locustfile, and outcome classification.

Kept free of heavy imports: the locustfile imports chaos.load.classify inside a
gevent-patched Locust process.
"""
