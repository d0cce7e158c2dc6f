"""The HTTPS front door: a FastAPI app served on Lambda through Mangum (``api.app.handler``).

No torch and no module-level AWS clients here: the cold start of every container pays for
whatever this package imports.
"""
