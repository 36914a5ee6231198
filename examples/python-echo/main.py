"""The smallest Python app: plain functions, named after the events they handle."""


def echo(request):
    """Returns the request body unchanged."""
    return request.body()


def ping(request):
    return "pong"
